"""The CLI's persistent SSH files: the reservation's key, pinned known_hosts and ssh_config.

The remote layer keeps such files in a per-process directory removed at exit; the CLI's
outlive it, because `ansible -i <inventory>` and `ssh -F <config>` run after `testbed` has
exited. They live in `$PULUMI_TESTBED_CACHE/cli` (default ~/.cache/pulumi-testbed/cli, the
engine cache's parent), one directory per distinct inventory, all 0700/0600, written once and
atomically (a concurrent reader never sees half a key). The ssh_config is the remote layer's
own (`ssh_config_text`), so plain ssh/ansible connect exactly as the provider's steps do.

ControlMaster sockets sit beside them in `ctl-<hash16>/` when that path is short enough for a
socket (it rarely is under a home directory: see materialize.control_dir_fits), else in the
user's short private runtime directory (materialize.runtime_dir). The ssh_config names the
place, and is rewritten when the place changes.

A workspace holds a private key, so it must not outlive its reservation: the Reservation's
Delete removes every workspace holding its key (`forget`), and `testbed gc` those no stack's
reservation uses (each records where it came from in `origin.json`).
"""

from __future__ import annotations

import glob
import hmac
import json
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any, Optional

from ..common.private_files import write_private
from ..remote.api import RemoteError
from ..remote.inventory import Inventory
from ..remote.materialize import control_dir_fits, control_dir_name, runtime_dir, runtime_dirs, ssh_config_text, stop_masters
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
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pulumi-testbed"
    )
    return os.path.join(base, "cli")


def _private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)  # also when it existed with a looser mode


def workspace_dir(inv: Inventory) -> str:
    """`<cache>/ws-<hash16>`: one directory per distinct inventory (its connection hash)."""
    return os.path.join(cache_root(), "ws-" + inv.connection_hash()[:16])


def control_dir(inv: Inventory) -> str:
    """Where the reservation's ControlMaster sockets go: beside the files when they fit there."""
    beside = os.path.join(cache_root(), control_dir_name(inv))
    if control_dir_fits(beside):
        return beside
    try:
        return os.path.join(runtime_dir(), control_dir_name(inv))
    except RemoteError as err:
        raise CliError(f"{err} (or set PULUMI_TESTBED_CACHE to a short directory)") from None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


ORIGIN = "origin.json"  # {project, stack, reservation}: what `testbed gc` checks a workspace against


def files_for(inv: Inventory, origin: Optional[dict[str, str]] = None) -> Files:
    """The files of `inv`, written on first use (the directory is named by the inventory's
    connection hash, so an existing key and known_hosts always hold the right content; the
    ssh_config also names the socket directory, so it is compared). `origin`: the project
    directory, stack and reservation they were read from."""
    root = cache_root()
    wdir = workspace_dir(inv)
    files = Files(wdir, os.path.join(wdir, "id"), os.path.join(wdir, "known_hosts"), os.path.join(wdir, "ssh_config"), control_dir(inv))
    config = ssh_config_text(inv, files.key, files.known_hosts, files.control_dir)
    origin_text = json.dumps(origin, sort_keys=True) + "\n" if origin else None
    if (
        all(os.path.isfile(p) for p in (files.key, files.known_hosts))
        and os.path.isdir(files.control_dir)
        and _read(files.ssh_config) == config
        and (origin_text is None or _read(os.path.join(wdir, ORIGIN)) == origin_text)
    ):
        return files
    try:
        os.makedirs(os.path.dirname(root), exist_ok=True)
        for d in (root, wdir, files.control_dir):
            _private_dir(d)
        known = inv.known_hosts if not inv.known_hosts or inv.known_hosts.endswith("\n") else inv.known_hosts + "\n"
        write_private(files.key, inv.private_key)
        write_private(files.known_hosts, known)
        write_private(files.ssh_config, config)
        if origin_text:
            write_private(os.path.join(wdir, ORIGIN), origin_text)
    except OSError as err:
        raise CliError(f"could not write the SSH files under {root}: {err.strerror or err}") from None
    return files


# ---- removing ------------------------------------------------------------------------------------


def workspaces() -> list[str]:
    """Every CLI workspace directory in the cache."""
    return sorted(glob.glob(os.path.join(glob.escape(cache_root()), "ws-*")))


def key_of(wdir: str) -> str:
    return _read(os.path.join(wdir, "id")) or ""


def origin_of(wdir: str) -> dict[str, Any]:
    try:
        data = json.loads(_read(os.path.join(wdir, ORIGIN)) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def control_dir_of(wdir: str) -> Optional[str]:
    """The socket directory a workspace's ssh_config names."""
    m = re.search(r'^\s*ControlPath "(.*)/%C"$', _read(os.path.join(wdir, "ssh_config")) or "", re.M)
    return m.group(1) if m else None


def control_dirs(name: str) -> list[str]:
    """Where a reservation's socket directory `ctl-…` may be: in the cache, or a runtime directory."""
    return [os.path.join(d, name) for d in [cache_root(), *runtime_dirs()] if os.path.isdir(os.path.join(d, name))]


def remove(wdirs: list[str], control: list[str]) -> None:
    """Remove workspaces and socket directories, their ControlMasters told to exit first."""
    stop_masters(set(control))
    for path in [*wdirs, *control]:
        shutil.rmtree(path, ignore_errors=True)


def forget(inv: Inventory) -> list[str]:
    """Remove the CLI's files of the reservation `inv` comes from: every workspace holding its
    private key (one per inventory it had: a host added makes another) and its sockets. Returns
    what was removed. Used when the reservation is released: nothing can use its key any more."""
    mine = [w for w in workspaces() if hmac.compare_digest(key_of(w).encode(), inv.private_key.encode())]
    control = control_dirs(control_dir_name(inv))
    remove(mine, control)
    return mine + control
