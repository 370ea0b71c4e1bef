"""Running the tools hosts are built with (ip, ssh-keygen, unshare…), as checked commands.

Each is one `processes.run` in the fixed environment (never a shell string built from input),
killed on Cancel or timeout; a failure is a CommandError naming the command and quoting the end
of its stderr, which is what the provider reports.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import Optional, Sequence

from ..common import deadlines, processes
from ..common.deadlines import Cancelled

ENV = processes.SAFE_ENV
TAIL = 600  # characters of stderr quoted in an error

__all__ = ["Cancelled", "CommandError", "ENV", "Result", "run"]


class CommandError(Exception):
    """A command failed; the message names it and quotes the end of its stderr."""

    def __init__(self, what: str, argv: Sequence[str], returncode: Optional[int], stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        shown = " ".join(shlex.quote(a) for a in argv[:8]) + (" …" if len(argv) > 8 else "")
        tail = stderr.strip()[-TAIL:]
        super().__init__(f"{what}: `{shown}` exited with {returncode}" + (f": {tail}" if tail else ""))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def run(
    argv: Sequence[str],
    *,
    what: str,
    input: Optional[str] = None,
    cancelled: Optional[asyncio.Event] = None,
    timeout: Optional[float] = 60.0,
    check: bool = True,
) -> Result:
    """Run `argv` to completion and return its output; kill it on Cancel (→ Cancelled) or
    after `timeout` seconds (→ CommandError). Nothing is started once Cancel has been requested."""
    if cancelled is not None and cancelled.is_set():
        raise Cancelled()
    done = await processes.run(
        argv, env=ENV, stdin=input.encode() if input is not None else None, deadline=deadlines.after(timeout), cancelled=cancelled
    )
    if done.outcome == processes.CANCELLED:
        raise Cancelled()
    if done.outcome == processes.TIMED_OUT:
        raise CommandError(what, argv, None, f"timed out after {timeout} s")
    result = Result(done.returncode or 0, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
    if check and done.returncode != 0:
        raise CommandError(what, argv, done.returncode, result.stderr or result.stdout)
    return result
