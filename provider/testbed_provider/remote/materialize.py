"""An inventory made concrete on the controller: key, known_hosts, ssh_config, Ansible inventory.

Steps arrive with nothing but the Reservation's `inventory` output (destroy must work from stack
state alone), but OpenSSH and Ansible want files. This module writes them once per distinct
inventory into a private per-process directory and keeps them for the life of the process:

    <root>/                      mode 0700, made with mkdtemp; removed at process exit
      ws-<hash16>/               one workspace per inventory (connection data + groups)
        id                       the client key, 0600 (never in argv, logs or messages)
        known_hosts  ssh_config  inventory.yml  ansible.cfg
      ctl-<hash16>/              ControlMaster sockets of one reservation (keyed by its key)

The root is made under $TMPDIR, or under /tmp when $TMPDIR is too long a path for the
sockets (see `control_dir_fits`).

Connections are multiplexed (ControlMaster auto, ControlPersist 60 s) with sockets in a
per-reservation directory, so consecutive steps of one reservation reuse authenticated
connections (measured: 20 hosts in ~0.1 s warm instead of ~1.1 s), whichever engine runs
them, and an inventory that only grew by a host keeps the other hosts' masters. The directory
is per reservation because reservations may reuse the very same addresses. At exit every
master is told to exit (`ssh -O exit`) and the whole root is removed.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import stat
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Optional

from ..common import deadlines, processes
from ..common.private_files import write_private
from .api import RemoteError
from .inventory import Inventory, parse

PYTHON_INTERPRETER = "/usr/bin/python3"  # see local-testbed.md, "Ansible interpreter discovery"
CONTROL_PERSIST = "60s"
CONNECT_TIMEOUT = 10  # seconds; also what Ansible uses by default
# A ControlMaster socket is `<control dir>/%C`, and OpenSSH first binds it as `<that>.<16 random
# characters>` (mux.c) before renaming it; the path must fit sockaddr_un.sun_path (108 bytes on
# Linux) with its terminating NUL (unix_listener refuses it otherwise, "too long for Unix domain socket").
SUN_PATH_SIZE = 108
OPENSSH_BIND_SUFFIX = 17  # "." and 16 random characters
CONTROL_NAME = 40  # %C: the SHA-1 of the connection, in hex
CONTROL_DIR_MAX = SUN_PATH_SIZE - 1 - OPENSSH_BIND_SUFFIX - CONTROL_NAME - 1  # 49: the longest directory for "<dir>/%C"
# What every ssh we start (and Ansible's) runs with: no inherited secrets, predictable tools.
SSH_ENV = {**processes.SAFE_ENV, "HOME": os.environ.get("HOME", "/root")}


@dataclass(frozen=True)
class Workspace:
    """The files of one inventory; every path is absolute."""

    inventory: Inventory
    dir: str
    key: str
    known_hosts: str
    ssh_config: str
    ansible_inventory: str
    ansible_cfg: str
    control_dir: str

    @property
    def control_path(self) -> str:
        return os.path.join(self.control_dir, "%C")

    def ssh_args(self) -> list[str]:
        """The options that make any ssh use this workspace (also Ansible's ANSIBLE_SSH_ARGS)."""
        return [
            "-F",
            self.ssh_config,
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPersist={CONTROL_PERSIST}",
            "-o",
            f"ControlPath={self.control_path}",
        ]

    def usable(self) -> bool:
        return all(os.path.exists(p) for p in (self.key, self.ssh_config, self.ansible_inventory, self.control_dir))


_lock = threading.Lock()
_root: Optional[str] = None
_workspaces: dict[str, Workspace] = {}
# (control dir, host) → when a step last found its ControlMaster working (see ssh_engine); `close`
# forgets a reservation's entries with its masters.
MASTERS_SEEN: dict[tuple[str, str], float] = {}


def _quote(path: str) -> str:
    """A path as one ssh_config argument."""
    if '"' in path or "\n" in path:
        raise RemoteError(f"cannot use the path {path!r} in an ssh_config")
    return f'"{path}"'


def ssh_config_text(inv: Inventory, key: str, known_hosts: str, control_dir: str) -> str:
    lines = ["# Written by pulumi-testbed (remote layer): ssh -F <this file> <host> …", ""]
    for h in inv.hosts:
        lines += [f"Host {h.name}", f"  HostName {h.address}", f"  User {h.user}", f"  Port {h.port}", ""]
    lines += [
        "Host *",
        f"  IdentityFile {_quote(key)}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {_quote(known_hosts)}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        f"  ConnectTimeout {CONNECT_TIMEOUT}",
        "  ServerAliveInterval 15",
        "  ServerAliveCountMax 4",
        "  LogLevel ERROR",
        "  ControlMaster auto",
        f"  ControlPersist {CONTROL_PERSIST}",
        f"  ControlPath {_quote(os.path.join(control_dir, '%C'))}",
    ]
    if inv.proxy_command:
        lines.append(f"  ProxyCommand {inv.proxy_command}")
    return "\n".join(lines) + "\n"


def ansible_inventory_data(inv: Inventory) -> dict[str, Any]:
    """Groups = roles; each host carries its connection variables, its addresses per network
    (`testbed_networks`), roles (`testbed_roles`) and its machine group's `vars`. `all.hosts` lists the hosts
    in inventory order, so Ansible's order (and `role[0]` subscripts) match ours."""
    hostvars = {
        h.name: {
            **h.vars,
            "ansible_host": h.address,
            "ansible_user": h.user,
            "ansible_port": h.port,
            "ansible_python_interpreter": PYTHON_INTERPRETER,
        }
        for h in inv.hosts
    }
    children: dict[str, Any] = {role: {"hosts": {name: {} for name in members}} for role, members in inv.groups}
    return {"all": {"hosts": hostvars, "children": children}}


ANSIBLE_CFG = """\
# Written by pulumi-testbed: an empty configuration, so no ansible.cfg of the machine, the user
# or the working directory changes how steps run. Settings come from the environment.
[defaults]
"""


def control_dir_name(inv: Inventory) -> str:
    """`ctl-<16 hex>`: one directory of ControlMaster sockets per reservation (keyed by its key)."""
    return "ctl-" + inv.identity_hash()[:16]


def control_dir_fits(path: str) -> bool:
    """Whether ControlMaster sockets `<path>/%C` can be bound (OpenSSH's temporary name included)."""
    return len(os.fsencode(path)) <= CONTROL_DIR_MAX


def _private_dir_ok(path: str) -> Optional[str]:
    """None when `path` is a real directory (not a symlink) owned by us and private (made so
    if we own it); else why it cannot hold our sockets."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return f"{path}: {err.strerror or err}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory (a symlink?)"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}, not to us"
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return None


RUNTIME_NAME = "tb-ssh"
_CTL_PROBE = "ctl-" + "0" * 16  # every control directory's name has this length


def runtime_dirs() -> list[str]:
    """Where runtime_dir may be, best first (whether or not they exist)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    candidates = [os.path.join(runtime, RUNTIME_NAME)] if os.path.isabs(runtime) else []
    return candidates + [f"/tmp/{RUNTIME_NAME}-{os.geteuid()}"]


def runtime_dir() -> str:
    """A stable directory private to this user for ControlMaster sockets when the usual place is
    too long a path: `$XDG_RUNTIME_DIR/tb-ssh`, else `/tmp/tb-ssh-<uid>`; created 0700, and one
    that is a symlink or not ours is refused (a shared /tmp is anyone's to fill)."""
    refused = []
    for path in runtime_dirs():
        if not control_dir_fits(os.path.join(path, _CTL_PROBE)):
            refused.append(f"{path} is too long a path")
            continue
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as err:
            refused.append(f"{path}: {err.strerror or err}")
            continue
        why = _private_dir_ok(path)
        if why is None:
            return path
        refused.append(why)
    raise RemoteError("no private directory short enough for SSH control sockets: " + "; ".join(refused))


def _root_dir() -> str:
    global _root
    if _root is None or not os.path.isdir(_root):
        root = tempfile.mkdtemp(prefix="tb-remote-")
        if not control_dir_fits(os.path.join(root, _CTL_PROBE)):  # a long $TMPDIR: mkdtemp is safe in /tmp too
            os.rmdir(root)
            root = tempfile.mkdtemp(prefix="tb-remote-", dir="/tmp")
        os.chmod(root, 0o700)
        _root = root
    return _root


def _create(inv: Inventory, key: str) -> Workspace:
    root = _root_dir()
    wdir = os.path.join(root, "ws-" + key[:16])
    cdir = os.path.join(root, control_dir_name(inv))
    os.makedirs(wdir, mode=0o700, exist_ok=True)
    os.makedirs(cdir, mode=0o700, exist_ok=True)
    ws = Workspace(
        inv,
        wdir,
        os.path.join(wdir, "id"),
        os.path.join(wdir, "known_hosts"),
        os.path.join(wdir, "ssh_config"),
        os.path.join(wdir, "inventory.yml"),
        os.path.join(wdir, "ansible.cfg"),
        cdir,
    )
    write_private(ws.key, inv.private_key)
    write_private(ws.known_hosts, inv.known_hosts if inv.known_hosts.endswith("\n") or not inv.known_hosts else inv.known_hosts + "\n")
    write_private(ws.ssh_config, ssh_config_text(inv, ws.key, ws.known_hosts, cdir))
    # JSON is YAML: the yaml inventory plugin reads it, and no YAML quoting pitfalls apply.
    write_private(ws.ansible_inventory, json.dumps(ansible_inventory_data(inv), indent=1) + "\n")
    write_private(ws.ansible_cfg, ANSIBLE_CFG)
    return ws


def _get(inv: Inventory) -> Workspace:
    key = inv.connection_hash()
    with _lock:
        ws = _workspaces.get(key)
        if ws is None or not ws.usable():
            ws = _create(inv, key)
            _workspaces[key] = ws
        return ws


async def workspace(inventory: dict[str, Any] | Inventory) -> Workspace:
    """The workspace of `inventory`, written on first use (in a thread: file I/O stays off the loop)."""
    inv = inventory if isinstance(inventory, Inventory) else parse(inventory)
    with _lock:
        ws = _workspaces.get(inv.connection_hash())
    if ws is not None and ws.usable():
        return ws
    try:
        return await asyncio.to_thread(_get, inv)
    except OSError as err:
        raise RemoteError(f"could not write the SSH workspace: {err.strerror or err}") from None


# ---- closing -----------------------------------------------------------------------------------


def _sockets(control_dirs: set[str]) -> list[str]:
    found = []
    for d in control_dirs:
        try:
            found += [os.path.join(d, n) for n in os.listdir(d)]
        except OSError:
            pass
    return found


def _exit_argv(sock: str) -> list[str]:
    # Only talks to the master through its socket: no config, no key, no network.
    return ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "placeholder"]


async def close(inventory: dict[str, Any] | Inventory | None = None) -> None:
    """Stop the ControlMasters of one reservation (or of all) and forget its workspaces.

    The next step reconnects from scratch. Used by tests and benchmarks (cold runs), and
    safe to call at any time: a step running meanwhile simply loses multiplexing."""
    inv = inventory if inventory is None or isinstance(inventory, Inventory) else parse(inventory)
    with _lock:
        doomed = {k: w for k, w in _workspaces.items() if inv is None or w.inventory.identity_hash() == inv.identity_hash()}
        for k in doomed:
            del _workspaces[k]
    cdirs = {w.control_dir for w in doomed.values()}
    for seen in [k for k in MASTERS_SEEN if k[0] in cdirs]:
        MASTERS_SEEN.pop(seen, None)
    deadline = deadlines.after(5)
    await asyncio.gather(*(processes.run(_exit_argv(sock), env=SSH_ENV, deadline=deadline) for sock in _sockets(cdirs)))
    for path in [w.dir for w in doomed.values()] + sorted(cdirs):
        await asyncio.to_thread(shutil.rmtree, path, True)
    if inv is None:
        global _root
        with _lock:
            root, _root = (_root, None) if not _workspaces else (None, _root)
        if root:
            await asyncio.to_thread(shutil.rmtree, root, True)


def stop_masters(control_dirs: set[str]) -> None:
    """Tell the ControlMasters whose sockets are in `control_dirs` to exit, without an event
    loop: plain subprocesses, started all at once, waited ≤ 3 s."""
    processes.run_all_sync([_exit_argv(sock) for sock in _sockets(control_dirs)], env=SSH_ENV, timeout=3)


def _close_at_exit() -> None:
    """atexit: the loop is gone (see stop_masters)."""
    global _root
    with _lock:
        cdirs = {w.control_dir for w in _workspaces.values()}
        _workspaces.clear()
        root, _root = _root, None
    stop_masters(cdirs)
    if root:
        shutil.rmtree(root, ignore_errors=True)


atexit.register(_close_at_exit)
