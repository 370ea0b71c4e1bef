"""The CLI's persistent SSH files: the reservation's key, pinned known_hosts and ssh_config.

The remote layer keeps such files in a per-process directory removed at exit; the CLI's
outlive it, because `ansible -i <inventory>` and `ssh -F <config>` run after `testbed` has
exited. They live in `$PULUMI_TESTBED_CACHE/cli` (default ~/.cache/pulumi-testbed/cli, the
engine cache's parent), one directory per distinct inventory, all 0700/0600, written once and
atomically (a concurrent reader never sees half a key). The ssh_config is the remote layer's
own (`ssh_config_text`), so plain ssh/ansible connect exactly as the provider's steps do.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from ..remote.inventory import Inventory
from ..remote.materialize import SOCKET_PATH_MAX, ssh_config_text
from .stacks import CliError


@dataclass(frozen=True)
class Files:
    dir: str
    key: str
    known_hosts: str
    ssh_config: str
    control_dir: str


def cache_root() -> str:
    base = os.environ.get("PULUMI_TESTBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pulumi-testbed")
    return os.path.join(base, "cli")


def _private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)  # also when it existed with a looser mode


def _write_private(path: str, text: str) -> None:
    """Write `path` 0600 from the start, replacing it atomically."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def files_for(inv: Inventory) -> Files:
    """The files of `inv`, written on first use (the directory is named by the inventory's
    connection hash, so existing files always hold the right content)."""
    root = cache_root()
    wdir = os.path.join(root, "ws-" + inv.connection_hash()[:16])
    files = Files(wdir, os.path.join(wdir, "id"), os.path.join(wdir, "known_hosts"), os.path.join(wdir, "ssh_config"),
                  os.path.join(root, "ctl-" + inv.identity_hash()[:16]))
    if len(os.path.join(files.control_dir, "x" * 40)) > SOCKET_PATH_MAX:
        raise CliError(f"the cache directory {root} is too long a path for SSH control sockets: set PULUMI_TESTBED_CACHE shorter")
    if all(os.path.isfile(p) for p in (files.key, files.known_hosts, files.ssh_config)) and os.path.isdir(files.control_dir):
        return files
    try:
        os.makedirs(os.path.dirname(root), exist_ok=True)
        for d in (root, wdir, files.control_dir):
            _private_dir(d)
        known = inv.known_hosts if not inv.known_hosts or inv.known_hosts.endswith("\n") else inv.known_hosts + "\n"
        _write_private(files.key, inv.private_key)
        _write_private(files.known_hosts, known)
        _write_private(files.ssh_config, ssh_config_text(inv, files.key, files.known_hosts, files.control_dir))
    except OSError as err:
        raise CliError(f"could not write the SSH files under {root}: {err.strerror or err}") from None
    return files
