"""The Ansible engine: one `ansible-playbook` run with a one-task play for all matched hosts.

Used when a step asks for Ansible (engine="ansible"), and by the parity test that proves the
fast path returns the same results. It runs in the same workspace as the ssh engine: the same
inventory file (groups = roles, ansible_python_interpreter set), the same ssh_config and
ControlMaster sockets passed through ANSIBLE_SSH_ARGS (which replaces Ansible's own ssh
defaults, so the multiplexing options are repeated there), pipelining on, forks = number of
hosts. `environment` and `become` are task keywords; the command and environment values are
tagged `!unsafe` so Ansible never templates `{{ … }}` inside them. Results arrive as one JSON
line per host event from the `testbed_events` stdout callback shipped beside this module.

A playbook rather than ad-hoc `ansible`: ad-hoc has no `environment` keyword, and the command
module's free-form arguments would parse `creates=…`-like words of the command itself.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Mapping, Optional

from ..common import deadlines, processes
from ..common.private_files import unlink_quietly, write_private
from ..common.results import HostResult
from .api import RemoteError
from .materialize import CONNECT_TIMEOUT, SSH_ENV, Workspace

CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ansible_plugins", "callback")
UNREACHABLE_PREFIX = "Failed to connect to the host via ssh: "
HARD_GRACE = 15.0  # seconds past the step's timeout before ansible-playbook itself is killed
STDERR_TAIL = 1500


def playbook_text(script: str | Mapping[str, str], environment: Mapping[str, str], become: bool, timeout: float) -> str:
    """One play on `all` (narrowed by --limit), one shell task. Written with PyYAML, so any
    character survives, with `!unsafe` on every user-provided string. A map of scripts gives
    each host its own (a command rendered per host): a play variable, picked by host name, whose
    `!unsafe` values Ansible never templates."""
    import yaml

    class Unsafe(str):
        pass

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style='"'))
    play: dict[str, Any] = {"name": "pulumi-testbed step", "hosts": "all", "gather_facts": False}
    if isinstance(script, str):
        cmd: str = Unsafe(script)
    else:
        play["vars"] = {"__tb_scripts": {h: Unsafe(text) for h, text in script.items()}}
        cmd = "{{ __tb_scripts[inventory_hostname] }}"
    task: dict[str, Any] = {"name": "step", "ansible.builtin.shell": {"cmd": cmd}}
    if environment:
        task["environment"] = {k: Unsafe(v) for k, v in environment.items()}
    if become:
        task["become"] = True
    if timeout > 0:
        task["timeout"] = max(1, math.ceil(timeout))
    play["tasks"] = [task]
    return yaml.dump([play], Dumper=Dumper, allow_unicode=True, width=1 << 30, sort_keys=False)


def environment(ws: Workspace) -> dict[str, str]:
    root = os.path.dirname(ws.dir)
    return {
        **SSH_ENV,
        "ANSIBLE_CONFIG": ws.ansible_cfg,
        "ANSIBLE_HOME": os.path.join(root, "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": os.path.join(root, "ansible-home", "tmp"),
        "ANSIBLE_SSH_ARGS": " ".join(shlex.quote(a) for a in ws.ssh_args()),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_TIMEOUT": str(CONNECT_TIMEOUT),
        "ANSIBLE_STDOUT_CALLBACK": "testbed_events",
        "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def to_result(event: dict[str, Any], started: Optional[float], timeout: float) -> HostResult:
    """One host's callback event → HostResult, with the ssh engine's conventions."""
    host, kind, res, t = event["host"], event["tb"], event.get("result") or {}, float(event.get("t") or time.time())
    t0 = started if started is not None else t
    at, took = _iso(t0), max(0.0, t - t0)
    msg = str(res.get("msg") or "")
    if kind == "unreachable":
        return HostResult(host, -1, "", msg.removeprefix(UNREACHABLE_PREFIX).rstrip("\r\n"), at, took, "unreachable")
    if res.get("timedout"):
        return HostResult(host, -1, "", f"timed out after {timeout:g} s: killed ({msg})", at, took, "timeout")
    rc = res.get("rc")
    stdout, stderr = str(res.get("stdout") or "").rstrip("\r\n"), str(res.get("stderr") or "").rstrip("\r\n")
    if kind == "ok" and isinstance(rc, int):
        return HostResult(host, rc, stdout, stderr, at, took, "ok" if rc == 0 else "failed")
    if kind == "failed" and isinstance(rc, int) and "stdout" in res:
        return HostResult(host, rc, stdout, stderr, at, took, "ok" if rc == 0 else "failed")
    # The module itself failed (interpreter missing, become refused…): say everything Ansible said.
    detail = "\n".join(str(res[k]).rstrip("\r\n") for k in ("module_stderr", "module_stdout") if res.get(k))
    text = msg + ("\n" + detail if detail else "") if msg or detail else f"ansible reported `{kind}` without a message"
    return HostResult(host, rc if isinstance(rc, int) and rc != 0 else 1, stdout, text, at, took, "failed")


async def run(
    ws: Workspace,
    hosts: list[str],
    script: str | Mapping[str, str],
    *,
    run_id: str,
    env: Mapping[str, str],
    become: bool,
    timeout: float,
    deadline: Optional[float],
    cancelled: Optional[asyncio.Event],
    timeout_note: str,
    on_result: Callable[[HostResult], Awaitable[None]],
) -> list[HostResult]:
    """Run `script` (or each host's own, from a map) through the shell module on `hosts`;
    results in `hosts` order."""
    if importlib.util.find_spec("ansible") is None:
        raise RemoteError(f"ansible-core is not installed for {sys.executable}: the Ansible engine cannot run")
    book = os.path.join(ws.dir, f"step-{run_id}.yml")
    text = playbook_text(script, env, become, timeout)
    await asyncio.to_thread(write_private, book, text)
    argv = [
        sys.executable,
        "-m",
        "ansible",
        "playbook",
        "-i",
        ws.ansible_inventory,
        "-f",
        str(max(1, len(hosts))),
        "--limit",
        ",".join(hosts),
        book,
    ]
    started: dict[str, float] = {}
    results: dict[str, HostResult] = {}
    pending: list[asyncio.Task] = []

    def on_event(event: dict[str, Any]) -> None:
        host = event.get("host")
        if host not in hosts or host in results:
            return
        if event["tb"] == "start":
            started[host] = float(event.get("t") or time.time())
            return
        results[host] = to_result(event, started.get(host), timeout)
        pending.append(asyncio.ensure_future(on_result(results[host])))

    hard = deadlines.extended(deadline, HARD_GRACE)
    t_start = time.time()
    events = EventReader(on_event)
    try:
        f = await processes.run(
            argv,
            env=environment(ws),
            deadline=hard,
            cancelled=cancelled,
            cwd=ws.dir,
            term_grace=1.0,
            kill_group=True,
            on_stdout=events.feed,
        )
    finally:
        await asyncio.to_thread(unlink_quietly, book)
    events.close()
    if pending:
        await asyncio.gather(*pending)

    if not results and f.outcome == processes.EXITED:
        tail = processes.text(f.stderr)[-STDERR_TAIL:] or processes.text(f.stdout)[-STDERR_TAIL:]
        raise RemoteError(f"ansible-playbook exited with {f.returncode} before any host ran: {tail or '(no output)'}")
    out: list[HostResult] = []
    for host in hosts:
        r = results.get(host)
        if r is None:
            t0 = started.get(host, t_start)
            took = time.time() - t0
            if f.outcome == processes.CANCELLED:
                r = HostResult(host, -1, "", "cancelled: killed before it finished", _iso(t0), took, "timeout")
            elif f.outcome == processes.TIMED_OUT:
                r = HostResult(host, -1, "", timeout_note, _iso(t0), took, "timeout")
            else:
                tail = processes.text(f.stderr)[-STDERR_TAIL:]
                r = HostResult(
                    host,
                    -1,
                    "",
                    f"ansible-playbook exited with {f.returncode} without a result for this host: {tail}",
                    _iso(t0),
                    took,
                    "failed",
                )
            await on_result(r)
        out.append(r)
    return out


class EventReader:
    """Turns ansible-playbook's stdout, chunk by chunk, into the `testbed_events` callback's
    events (the lines starting with `{"tb":`; anything else Ansible prints is ignored)."""

    def __init__(self, handle: Callable[[dict[str, Any]], None]) -> None:
        self.handle = handle
        self.buf = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.buf += chunk
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                return
            line = bytes(self.buf[:nl]).strip()
            del self.buf[: nl + 1]
            self._line(line)

    def close(self) -> None:
        self.feed(b"\n")

    def _line(self, line: bytes) -> None:
        if not line.startswith(b'{"tb":'):
            return
        try:
            event = json.loads(line)
        except ValueError:
            return
        self.handle(event)
