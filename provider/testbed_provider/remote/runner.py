"""run_shell and stop_background: check the request, pick an engine, clean up after timeouts.

Engines (same workspace, same remote scripts, identical results — tests/remote proves it):
  - `ssh`: one OpenSSH client per host over multiplexed connections (ssh_engine). What `auto`
    picks, since every run_shell step is a plain shell command and this is ~10–40× faster
    than an Ansible run on the local testbed (see bench/fanout.py).
  - `ansible`: one ansible-playbook run with a one-task play (ansible_engine).
After a timeout or Cancel the hosts still running get `scripts.kill_script` (TERM, then KILL,
to the step's remote process group): closing an SSH channel does not stop a command.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Mapping, Optional

from . import ansible_engine, ssh_engine
from .api import HostResult, Progress, RemoteError
from .inventory import parse
from .materialize import Workspace, workspace
from .patterns import match_hosts
from .progress import Reporter
from .scripts import ENV_NAME, TAG, bg_start_script, bg_stop_script, kill_script, step_script

ENGINES = ("auto", "ssh", "ansible")
KILL_BUDGET = 10.0  # seconds allowed for stopping remote commands after a timeout or Cancel
STOP_BUDGET = 30.0  # seconds allowed for stop_background (its script needs up to ~4 s per host)


def _check_environment(environment: Optional[Mapping[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, value in (environment or {}).items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            raise RemoteError(f"environment: {name!r} is not a valid variable name")
        if not isinstance(value, str):
            raise RemoteError(f"environment.{name}: must be a string")  # the value itself is never quoted
        env[name] = value
    return env


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not TAG.match(tag):
        raise RemoteError(f"background tag {tag!r} must be 1–101 letters, digits, `.`, `_` or `-` (not starting with a mark)")
    return tag


async def _stop_remote(ws: Workspace, results: list[HostResult], run_id: str, become: bool) -> None:
    """Kill what timed-out/cancelled hosts still run; say on each result whether that worked."""
    targets = [r for r in results if r.status == "timeout"]
    if not targets:
        return

    async def ignore(_: HostResult) -> None:
        return None

    kills = await ssh_engine.run(ws, [r.host for r in targets], lambda _h: kill_script(run_id), become=become,
                                 deadline=time.monotonic() + KILL_BUDGET, cancelled=None, timeout_note="timed out",
                                 on_result=ignore)
    for r, k in zip(targets, kills):
        if k.status == "ok":
            r.stderr += "; the remote command was stopped (its process group got TERM, then KILL if needed)"
        else:
            r.stderr += f"; could not stop the remote command ({k.status}: {k.stderr.strip()[-300:]})"


async def run_shell(
    inventory: dict[str, Any],
    pattern: str,
    command: str,
    *,
    environment: Optional[dict[str, str]] = None,
    become: bool = False,
    background: Optional[str] = None,
    timeout: float = 0,
    cancelled: Optional[asyncio.Event] = None,
    progress: Optional[Progress] = None,
    engine: str = "auto",
) -> list[HostResult]:
    """Run `command` under /bin/sh on every host `pattern` matches; one HostResult per host, in
    inventory order. Raises PatternError (nothing matched) or RemoteError (could not start)."""
    if engine not in ENGINES:
        raise RemoteError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not isinstance(command, str) or not command.strip():
        raise RemoteError("the command is empty")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise RemoteError(f"timeout must be a number of seconds ≥ 0 (0: none), got {timeout!r}")
    env = _check_environment(environment)
    tag = _check_tag(background) if background is not None else None
    inv = parse(inventory)
    names = match_hosts(inv, pattern)
    if cancelled is not None and cancelled.is_set():
        raise RemoteError("cancelled before the command was started on any host")
    ws = await workspace(inv)

    chosen = "ansible" if engine == "ansible" else "ssh"
    run_id = uuid.uuid4().hex
    deadline = time.monotonic() + timeout if timeout > 0 else None
    note = f"timed out after {timeout:g} s: killed"
    reporter = Reporter(progress, len(names), "starting in the background" if tag else "running")
    await reporter.start(chosen)

    if chosen == "ssh":
        script = bg_start_script(command, tag, env) if tag else step_script(command, run_id, env)
        results = await ssh_engine.run(ws, names, lambda _h: script, become=become, deadline=deadline, cancelled=cancelled,
                                       timeout_note=note, on_result=reporter.finished)
    else:
        # Open the masters first, one attempt per host (see ssh_engine.ensure_master), so a
        # step running beside this one cannot race Ansible's connections into a warning.
        # A host that fails here fails again in Ansible, which reports it in its own words.
        await asyncio.gather(*(ssh_engine.ensure_master(ws, h, deadline, cancelled) for h in names))
        # The environment goes through the task's `environment` keyword, not the script.
        script = bg_start_script(command, tag) if tag else step_script(command, run_id)
        results = await ansible_engine.run(ws, names, script, run_id=run_id, env=env, become=become, timeout=timeout,
                                           deadline=deadline, cancelled=cancelled, timeout_note=note, on_result=reporter.finished)
    if not tag:
        await _stop_remote(ws, results, run_id, become)
    await reporter.summary(results)
    return results


async def stop_background(
    inventory: dict[str, Any],
    pattern: str,
    tag: str,
    *,
    cancelled: Optional[asyncio.Event] = None,
    progress: Optional[Progress] = None,
    become: bool = False,
) -> list[HostResult]:
    """Stop the process group `run_shell(..., background=tag)` started on each matched host
    (TERM, KILL after ~2 s), remove its pidfile; `ok` when it is gone already.

    `become` (an addition, default off): stop a command that was started with become by a
    non-root login user (its pidfile is in the become user's home)."""
    tag = _check_tag(tag)
    inv = parse(inventory)
    names = match_hosts(inv, pattern)
    ws = await workspace(inv)
    reporter = Reporter(progress, len(names), f"stopping background `{tag}`")
    await reporter.start("ssh")
    results = await ssh_engine.run(ws, names, lambda _h: bg_stop_script(tag), become=become,
                                   deadline=time.monotonic() + STOP_BUDGET, cancelled=cancelled,
                                   timeout_note=f"timed out after {STOP_BUDGET:g} s", on_result=reporter.finished)
    await reporter.summary(results)
    return results
