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

from ..common import deadlines
from ..common.results import HostResult
from . import ansible_engine, ssh_engine
from .api import PerHost, Progress, RemoteError
from .inventory import parse
from .materialize import Workspace, workspace
from .patterns import match_hosts
from .progress import Reporter
from .scripts import ENV_NAME, TAG, Readiness, bg_start_script, bg_stop_script, kill_script, step_script

ENGINES = ("auto", "ssh", "ansible")
KILL_BUDGET = 10.0  # seconds allowed for stopping remote commands after a timeout or Cancel
STOP_BUDGET = 30.0  # seconds allowed for stop_background (its script needs up to ~4 s per host)
READY_GRACE = 30.0  # seconds past a readiness timeout before the controller gives up on a host itself
WAITING_EVERY = 2.0  # seconds between two "waiting until ready" progress lines


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


def _per_host(value: PerHost, names: list[str], what: str) -> dict[str, str]:
    """Each matched host's text: the same for all, or its own (every host must have one)."""
    if isinstance(value, str):
        texts = {h: value for h in names}
    elif isinstance(value, Mapping):
        missing = [h for h in names if not isinstance(value.get(h), str)]
        if missing:
            raise RemoteError(f"no {what} for host(s) {', '.join(missing)}")
        texts = {h: value[h] for h in names}
    else:
        raise RemoteError(f"the {what} must be a string or a map of host names to strings")
    if not all(t.strip() for t in texts.values()):
        raise RemoteError(f"the {what} is empty")
    return texts


def _check_ready(ready_port: Any, ready_command: Optional[PerHost], ready_timeout: Any, tag: Optional[str]) -> None:
    if ready_port is None and ready_command is None:
        return
    if tag is None:
        raise RemoteError("readiness (a ready port or command) is for background commands")
    if ready_port is not None and (isinstance(ready_port, bool) or not isinstance(ready_port, int) or not 0 < ready_port < 65536):
        raise RemoteError(f"the ready port must be a TCP port number (1–65535), got {ready_port!r}")
    if isinstance(ready_timeout, bool) or not isinstance(ready_timeout, (int, float)) or ready_timeout <= 0:
        raise RemoteError(f"the ready timeout must be a number of seconds > 0, got {ready_timeout!r}")


async def _while_waiting(reporter: Reporter, names: list[str], done: set[str], ready: Readiness) -> None:
    """Progress while background commands get ready: which hosts are still waited for."""
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(WAITING_EVERY)
        pending = [h for h in names if h not in done]
        if not pending:
            return
        shown = ", ".join(pending[:8]) + (" …" if len(pending) > 8 else "")
        await reporter.say(
            f"waiting until ready ({ready.describe()}) on {len(pending)} host{'s' if len(pending) != 1 else ''}: "
            f"{shown} ({time.monotonic() - t0:.0f} s of {ready.timeout:g})"
        )


async def _stop_remote(ws: Workspace, results: list[HostResult], run_id: str, become: bool) -> None:
    """Kill what timed-out/cancelled hosts still run; say on each result whether that worked."""
    targets = [r for r in results if r.status == "timeout"]
    if not targets:
        return

    async def ignore(_: HostResult) -> None:
        return None

    kills = await ssh_engine.run(
        ws,
        [r.host for r in targets],
        lambda _h: kill_script(run_id),
        become=become,
        deadline=deadlines.after(KILL_BUDGET),
        cancelled=None,
        timeout_note="timed out",
        on_result=ignore,
    )
    for r, k in zip(targets, kills):
        if k.status == "ok":
            r.stderr += "; the remote command was stopped (its process group got TERM, then KILL if needed)"
        else:
            r.stderr += f"; could not stop the remote command ({k.status}: {k.stderr.strip()[-300:]})"


async def run_shell(
    inventory: dict[str, Any],
    pattern: str,
    command: PerHost,
    *,
    environment: Optional[dict[str, str]] = None,
    become: bool = False,
    background: Optional[str] = None,
    timeout: float = 0,
    cancelled: Optional[asyncio.Event] = None,
    progress: Optional[Progress] = None,
    engine: str = "auto",
    ready_port: Optional[int] = None,
    ready_command: Optional[PerHost] = None,
    ready_timeout: float = 60.0,
    keep_running: bool = False,
) -> list[HostResult]:
    """Run `command` under /bin/sh on every host `pattern` matches; one HostResult per host, in
    inventory order. Raises PatternError (nothing matched) or RemoteError (could not start).

    `command` may map each matched host to its own command (a template rendered per host, see
    templating.render); both engines then run each host's own text. A `background` command with
    `ready_port` and/or `ready_command` (also per host, or one for all) is waited for on each
    host until it is ready, at most `ready_timeout` seconds (see scripts.bg_start_script), with
    progress lines meanwhile; a host where it never gets ready fails, its command stopped. With
    `keep_running`, a host where that background command still runs succeeds without starting
    another (its stdout says `already running`)."""
    if engine not in ENGINES:
        raise RemoteError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if isinstance(command, str) and not command.strip():
        raise RemoteError("the command is empty")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise RemoteError(f"timeout must be a number of seconds ≥ 0 (0: none), got {timeout!r}")
    env = _check_environment(environment)
    tag = _check_tag(background) if background is not None else None
    _check_ready(ready_port, ready_command, ready_timeout, tag)
    inv = parse(inventory)
    names = match_hosts(inv, pattern)
    commands = _per_host(command, names, "command")
    ready_commands = _per_host(ready_command, names, "ready command") if ready_command is not None else {}
    if cancelled is not None and cancelled.is_set():
        raise RemoteError("cancelled before the command was started on any host")
    ws = await workspace(inv)

    chosen = "ansible" if engine == "ansible" else "ssh"
    run_id = uuid.uuid4().hex
    deadline = deadlines.after(timeout) if timeout > 0 else None
    note = f"timed out after {timeout:g} s: killed"
    waits = tag is not None and (ready_port is not None or ready_command is not None)
    if waits:
        backstop = deadlines.after(float(ready_timeout) + READY_GRACE)
        deadline = backstop if deadline is None else min(deadline, backstop)
        if deadline == backstop:
            note = f"no answer within {float(ready_timeout) + READY_GRACE:g} s of waiting until ready: killed"

    def readiness(host: str) -> Optional[Readiness]:
        if not waits:
            return None
        return Readiness(ready_port, ready_commands.get(host), float(ready_timeout))

    def script_for(host: str, with_env: bool) -> str:
        e = env if with_env else {}
        if tag:
            return bg_start_script(commands[host], tag, e, ready=readiness(host), keep_running=keep_running)
        return step_script(commands[host], run_id, e)

    reporter = Reporter(progress, len(names), "starting in the background" if tag else "running")
    await reporter.start(chosen)
    done: set[str] = set()

    async def finished(result: HostResult) -> None:
        done.add(result.host)
        await reporter.finished(result)

    ready_first = readiness(names[0]) if waits else None
    waiting = asyncio.ensure_future(_while_waiting(reporter, names, done, ready_first)) if ready_first else None
    try:
        if chosen == "ssh":
            scripts = {h: script_for(h, True) for h in names}
            results = await ssh_engine.run(
                ws, names, scripts.__getitem__, become=become, deadline=deadline, cancelled=cancelled, timeout_note=note, on_result=finished
            )
        else:
            # Open the masters first, one attempt per host (see ssh_engine.ensure_master), so a
            # step running beside this one cannot race Ansible's connections into a warning.
            # A host that fails here fails again in Ansible, which reports it in its own words.
            await asyncio.gather(*(ssh_engine.ensure_master(ws, h, deadline, cancelled) for h in names))
            # The environment goes through the task's `environment` keyword, not the script.
            per_host = {h: script_for(h, False) for h in names}
            one = set(per_host.values())
            script: PerHost = one.pop() if len(one) == 1 else per_host
            results = await ansible_engine.run(
                ws,
                names,
                script,
                run_id=run_id,
                env=env,
                become=become,
                timeout=timeout,
                deadline=deadline,
                cancelled=cancelled,
                timeout_note=note,
                on_result=finished,
            )
    finally:
        if waiting is not None:
            waiting.cancel()
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
    results = await ssh_engine.run(
        ws,
        names,
        lambda _h: bg_stop_script(tag),
        become=become,
        deadline=deadlines.after(STOP_BUDGET),
        cancelled=cancelled,
        timeout_note=f"timed out after {STOP_BUDGET:g} s",
        on_result=reporter.finished,
    )
    await reporter.summary(results)
    return results
