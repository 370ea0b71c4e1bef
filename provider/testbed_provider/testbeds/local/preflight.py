"""Can this machine run local hosts? Privileges and tools, answered in one sentence."""

from __future__ import annotations

import os
import shutil
from typing import Optional

from ...hosts.commands import ENV

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
SSHD = "/usr/sbin/sshd"
# Tools the backend runs (besides sshd, which is looked for at its Debian path).
TOOLS = ("ip", "ssh-keygen", "nc", "unshare", "mount", "umount", "hostname")


def effective_capabilities(status_path: str = "/proc/self/status") -> int:
    """The CapEff bit mask of this process (0 if unreadable)."""
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def missing_tools() -> list[str]:
    missing = [t for t in TOOLS if shutil.which(t, path=ENV["PATH"]) is None]
    if not (os.path.isfile(SSHD) and os.access(SSHD, os.X_OK)):
        missing.append(SSHD)
    return missing


def preflight() -> Optional[str]:
    """Why the local backend cannot run here, or None."""
    problems, remedies = [], []
    caps = effective_capabilities()
    lacking = [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")) if not caps >> bit & 1]
    if os.geteuid() != 0 or lacking:
        who = f"uid {os.geteuid()}" + (f" without {' and '.join(lacking)}" if lacking else "")
        problems.append(f"needs root with CAP_NET_ADMIN and CAP_SYS_ADMIN (the provider runs as {who})")
        remedies.append("run Pulumi as root")
    missing = missing_tools()
    if missing:
        problems.append("needs " + ", ".join(missing) + " (not found)")
        remedies.append("run `make setup`")
    if not problems:
        return None
    return "The local testbed " + " and ".join(problems) + "; " + " and ".join(remedies) + "."
