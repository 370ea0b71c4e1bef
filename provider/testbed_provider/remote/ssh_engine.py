"""The fast path: one OpenSSH client per host, all in parallel, over multiplexed connections.

Each host gets `ssh -F <workspace ssh_config> -T <host> /bin/sh -s` with the step's script on
stdin (so neither the command nor environment values appear in any argv, on the controller or
the host); `become` prefixes `sudo -n -H` when the login user is not root. The ssh_config
makes every client a ControlMaster client: the first step of a reservation pays the SSH
handshake once per host, later steps start a session on the open connection (~5 ms).

Concurrent steps to one host (independent Commands run in parallel) must not race to create
its ControlMaster: with `ControlMaster auto`, the loser prints "ControlSocket … already exists,
disabling multiplexing" into the command's stderr. So a per-host lock guards establishing the
master (`ensure_master`), and step clients run with `ControlMaster=no`: they use the master,
or connect directly if it vanished meanwhile, and never try to become one.

An exit status of 255 is ambiguous (ssh's own failure, or the command's `exit 255`). Ansible
resolves it through its module's JSON; here the multiplexing master decides: if a master to
that host is running (`ssh -O check`), the connection was fine and 255 is the command's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Optional

from ..common import deadlines, processes
from ..common.results import HostResult
from .materialize import MASTERS_SEEN, SSH_ENV, Workspace

FORKS = 64  # ssh clients in flight at once (each is a small process; sshd accepts 100 startups)
FRESH_S = 20.0  # a master seen working this recently is trusted without `ssh -O check` (ControlPersist is 60 s)

# Per event loop (asyncio locks belong to one loop) and (control dir, host): who establishes the master.
_locks: "dict[tuple[int, str, str], asyncio.Lock]" = {}
_seen = MASTERS_SEEN


def remote_shell(user: str, become: bool) -> str:
    """What the login shell runs: a POSIX sh reading the script from stdin."""
    if become and user != "root":
        return "sudo -n -H /bin/sh -s"
    return "/bin/sh -s"


def argv(ws: Workspace, host: str, become: bool) -> list[str]:
    return ["ssh", "-F", ws.ssh_config, "-o", "ControlMaster=no", "-T", host, remote_shell(ws.inventory.host(host).user, become)]


async def master_alive(ws: Workspace, host: str) -> bool:
    f = await processes.run(["ssh", "-F", ws.ssh_config, "-O", "check", host], env=SSH_ENV, deadline=None)
    return f.returncode == 0


def _mark_seen(ws: Workspace, host: str) -> None:
    _seen[(ws.control_dir, host)] = time.monotonic()


async def ensure_master(
    ws: Workspace, host: str, deadline: Optional[float], cancelled: Optional[asyncio.Event]
) -> Optional[processes.Finished]:
    """Make sure a ControlMaster to `host` runs, one attempt at a time per host.
    None when it does; otherwise the failed connection attempt (its stderr says why)."""
    key = (ws.control_dir, host)
    if time.monotonic() - _seen.get(key, float("-inf")) < FRESH_S:
        return None
    lock = _locks.setdefault((id(asyncio.get_running_loop()), *key), asyncio.Lock())
    async with lock:
        if time.monotonic() - _seen.get(key, float("-inf")) < FRESH_S or await master_alive(ws, host):
            _mark_seen(ws, host)
            return None
        # `ControlMaster auto` + ControlPersist (from the ssh_config): the master detaches with
        # its stdio on /dev/null; this client runs `exit 0` through it and returns.
        f = await processes.run(["ssh", "-F", ws.ssh_config, "-T", host, "exit 0"], env=SSH_ENV, deadline=deadline, cancelled=cancelled)
        if f.outcome == processes.EXITED and f.returncode == 0:
            _mark_seen(ws, host)
            return None
        return f


async def _one(
    ws: Workspace, host: str, script: str, become: bool, deadline: Optional[float], cancelled: Optional[asyncio.Event], timeout_note: str
) -> HostResult:
    failed = await ensure_master(ws, host, deadline, cancelled)
    if failed is not None:
        err = processes.text(failed.stderr)
        if failed.outcome != processes.EXITED:
            note = timeout_note if failed.outcome == processes.TIMED_OUT else "cancelled: killed before it finished"
            return HostResult(host, -1, "", (err + "\n" if err else "") + note, failed.started_at, failed.duration_s, "timeout")
        return HostResult(
            host,
            -1,
            "",
            err or f"ssh exited with status {failed.returncode} without a message",
            failed.started_at,
            failed.duration_s,
            "unreachable",
        )
    f = await processes.run(argv(ws, host, become), env=SSH_ENV, stdin=script.encode(), deadline=deadline, cancelled=cancelled)
    out, err = processes.text(f.stdout), processes.text(f.stderr)
    if f.outcome != processes.EXITED:
        note = timeout_note if f.outcome == processes.TIMED_OUT else "cancelled: killed before it finished"
        return HostResult(host, -1, out, (err + "\n" if err else "") + note, f.started_at, f.duration_s, "timeout")
    rc = f.returncode if f.returncode is not None else -1
    if rc == 255 and not await master_alive(ws, host):
        return HostResult(host, -1, out, err or "ssh exited with status 255 without a message", f.started_at, f.duration_s, "unreachable")
    _mark_seen(ws, host)
    return HostResult(host, rc, out, err, f.started_at, f.duration_s, "ok" if rc == 0 else "failed")


async def run(
    ws: Workspace,
    hosts: list[str],
    script_for: Callable[[str], str],
    *,
    become: bool,
    deadline: Optional[float],
    cancelled: Optional[asyncio.Event],
    timeout_note: str,
    on_result: Callable[[HostResult], Awaitable[None]],
    forks: int = FORKS,
) -> list[HostResult]:
    """Run `script_for(host)` on every host; results in `hosts` order. A host not started
    when Cancel or the deadline comes is reported as status `timeout` too (it never ran)."""
    limit = asyncio.Semaphore(max(1, forks))

    async def host_task(host: str) -> HostResult:
        async with limit:
            why = None
            if cancelled is not None and cancelled.is_set():
                why = "cancelled before it started"
            elif deadlines.passed(deadline):
                why = "not started before the deadline"
            if why:
                result = HostResult(host, -1, "", why, processes.utc_now(), 0.0, "timeout")
            else:
                result = await _one(ws, host, script_for(host), become, deadline, cancelled, timeout_note)
        await on_result(result)
        return result

    return list(await asyncio.gather(*(host_task(h) for h in hosts)))
