"""`testbed run PATTERN -- COMMAND`: an ad-hoc shell command on the hosts of a live stack.

Runs through the remote layer's `run_shell`, exactly like a `testbed:index:Command` step (same
pattern rules, same direct-SSH engine, same per-host results), from a private per-process
workspace the layer removes at exit. Ctrl-C stops the remote commands too (their process
group gets TERM then KILL), not just the SSH sessions.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import TextIO

from ..common.results import HostResult
from ..remote import run_shell
from ..resources.command import result_output
from .stacks import Target

TAIL_LINES = 10
TAIL_CHARS = 2000


def tail(text: str) -> list[str]:
    """The end of a host's stderr: enough to see why it failed, not a whole log."""
    text = text[-TAIL_CHARS:]
    return text.splitlines()[-TAIL_LINES:]


def report(results: list[HostResult], out: TextIO) -> None:
    """One header line per host (`host | status | rc=N | seconds`), its stdout, its stderr's tail."""
    for r in results:
        out.write(f"{r.host} | {r.status} | rc={r.rc} | {r.duration_s:.2f}s\n")
        if r.stdout:
            out.write(r.stdout + "\n")
        for line in tail(r.stderr):
            out.write(f"stderr: {line}\n")


async def _run(target: Target, pattern: str, command: str, timeout: float, become: bool) -> tuple[list[HostResult], bool]:
    cancelled = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, cancelled.set)
    try:
        results = await run_shell(target.raw, pattern, command, timeout=timeout, become=become, cancelled=cancelled)
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return results, cancelled.is_set()


def run(target: Target, pattern: str, command: list[str], *, timeout: float = 0, become: bool = False, as_json: bool = False) -> int:
    """0 when the command exited 0 on every matched host, 1 otherwise, 130 after Ctrl-C.
    Words of `command` are joined with spaces, as ssh does, so shell syntax works either way."""
    results, interrupted = asyncio.run(_run(target, pattern, " ".join(command), timeout, become))
    if as_json:
        sys.stdout.write(json.dumps([result_output(r) for r in results], indent=2) + "\n")
    else:
        report(results, sys.stdout)
    bad = [r for r in results if r.status != "ok"]
    if bad:
        shown = ", ".join(f"{r.host} ({r.status}, rc={r.rc})" for r in bad[:8]) + (" …" if len(bad) > 8 else "")
        sys.stderr.write(f"testbed: {len(bad)} of {len(results)} host(s) did not succeed: {shown}\n")
    return 130 if interrupted else (1 if bad else 0)
