"""One sshd per host, in the host's namespace, with a private view of a few directories.

The host's directory in the run dir holds the sources of its private directories. sshd is
started as `ip netns exec <ns> unshare --mount --uts --propagation private sh -c <fixed script>
<args>`: the script is a constant (the per-host values are passed as positional arguments, never
spliced into it); it bind-mounts /etc/ssh, root's home, /home, /var/log, /etc/hosts and /run,
then /tmp last (the run dir lives under /tmp), sets the hostname and execs sshd, which
daemonizes (new session, so it outlives the plugin) and writes its pid to the private /run.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from typing import Optional

from ..common import pids
from ..common.private_files import write_private
from .commands import run
from .keys import HOST_KEY

SSHD = "/usr/sbin/sshd"
PID_FILE = "run/sshd.pid"  # relative to the host directory (it is /run/sshd.pid inside the host)
LOG_FILE = "log/sshd.log"

SSHD_CONFIG = f"""\
# Written by pulumi-testbed for one local host; /etc/ssh is private to this host.
HostKey /etc/ssh/{HOST_KEY}
PidFile /run/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
UseDNS no
MaxStartups 100:30:200
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""

# $1 host dir, $2 host name, $3 root's home, $4 sshd. Mount order matters: /tmp last.
# /run/netns is detached first so this mount namespace pins no other network namespace.
START_SCRIPT = """\
set -e
d=$1
umount -l /run/netns 2>/dev/null || true
mount --bind "$d/etc-ssh" /etc/ssh
mount --bind "$d/root" "$3"
mount --bind "$d/home" /home
mount --bind "$d/log" /var/log
mount --bind "$d/etc-hosts" /etc/hosts
mount --bind "$d/run" /run
mount --bind "$d/tmp" /tmp
hostname "$2"
exec "$4" -E /var/log/sshd.log
"""


def root_home() -> str:
    return pwd.getpwuid(0).pw_dir


def host_dir(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, "hosts", name)


def prepare_host_dir(hdir: str, client_public_key: str) -> None:
    """Create the sources of the host's private directories (blocking; run in a thread)."""
    for sub, mode in (
        ("etc-ssh", 0o755),
        ("root", 0o700),
        ("root/.ssh", 0o700),
        ("home", 0o755),
        ("log", 0o755),
        ("run", 0o755),
        ("run/sshd", 0o755),
        ("tmp", 0o1777),
    ):
        path = os.path.join(hdir, sub)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    write_private(os.path.join(hdir, "etc-ssh", "sshd_config"), SSHD_CONFIG, 0o644)
    write_private(os.path.join(hdir, "root", ".ssh", "authorized_keys"), client_public_key.strip() + "\n")
    if not os.path.exists(os.path.join(hdir, "etc-hosts")):  # once: later rewritten in place (write_etc_hosts)
        write_private(os.path.join(hdir, "etc-hosts"), "127.0.0.1\tlocalhost\n", 0o644)


def etc_hosts_text(hosts: list[tuple[str, str]]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "# management addresses of this reservation's hosts (pulumi-testbed)",
    ]
    lines += [f"{address}\t{name}" for name, address in hosts]
    return "\n".join(lines) + "\n"


def write_etc_hosts(hdir: str, text: str) -> None:
    """Rewrite in place: the file is bind-mounted into a running host, so its inode must stay."""
    path = os.path.join(hdir, "etc-hosts")
    with open(path, "r+" if os.path.exists(path) else "w") as f:
        f.seek(0)
        f.write(text)
        f.truncate()


async def start(namespace: str, hdir: str, name: str, cancelled: Optional[asyncio.Event]) -> None:
    """Start the host's sshd; returns once it has daemonized (readiness is checked separately)."""
    pid_file = os.path.join(hdir, PID_FILE)
    if os.path.exists(pid_file):
        os.unlink(pid_file)
    argv = [
        "ip",
        "netns",
        "exec",
        namespace,
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        START_SCRIPT,
        "sh",
        hdir,
        name,
        root_home(),
        SSHD,
    ]
    await run(argv, what=f"starting sshd on host {name}", cancelled=cancelled, timeout=30)


def read_pid(hdir: str) -> Optional[int]:
    try:
        with open(os.path.join(hdir, PID_FILE)) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def log_tail(hdir: str, chars: int = 400) -> str:
    try:
        with open(os.path.join(hdir, LOG_FILE), errors="replace") as f:
            return f.read()[-chars:].strip()
    except OSError:
        return ""


def start_time(pid: Optional[int]) -> Optional[int]:
    """What identifies the sshd `pid` later, beside its pid: its start time (see still_running)."""
    return pids.start_time(pid)


def still_running(pid: Optional[int], started: Optional[int]) -> bool:
    """Whether the sshd recorded as (`pid`, `started`) is still that very process: a reused pid
    has another start time. Never guessed without a recorded start time, never by name alone."""
    return pids.same_process(pid, started) and pid is not None and is_sshd(pid)


def is_sshd(pid: int) -> bool:
    """Whether process `pid` is an sshd (its command name; with a pid and more, never alone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip().startswith("sshd")
    except OSError:
        return False
