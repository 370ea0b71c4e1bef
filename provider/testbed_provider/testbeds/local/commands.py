"""Running external commands without blocking the event loop, and stopping them on Cancel.

The provider is a grpc.aio server: every command is an asyncio subprocess started from an argv
list (never a shell string built from input), and every wait also watches the engine's Cancel.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass
from typing import Optional, Sequence

# A fixed, minimal environment: the commands (and the sshd daemons they start) must not depend
# on the plugin's PATH or locale, and must not inherit anything secret from it.
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
TAIL = 600  # characters of stderr quoted in an error


class Cancelled(Exception):
    """The engine asked us to stop (Cancel RPC) while we were waiting."""


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


async def wait_or_cancel(aw, cancelled: Optional[asyncio.Event], timeout: Optional[float] = None):
    """Await `aw` unless `cancelled` is set first (→ Cancelled) or `timeout` passes (→ TimeoutError)."""
    task = asyncio.ensure_future(aw)
    if cancelled is None:
        return await asyncio.wait_for(task, timeout)
    stopper = asyncio.ensure_future(cancelled.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - the task is abandoned
        pass
    if cancelled.is_set():
        raise Cancelled()
    raise asyncio.TimeoutError()


async def run(
    argv: Sequence[str],
    *,
    what: str,
    input: Optional[str] = None,
    cancelled: Optional[asyncio.Event] = None,
    timeout: Optional[float] = 60.0,
    check: bool = True,
) -> Result:
    """Run `argv` to completion and return its output; kill it on Cancel or timeout.

    Nothing is started once Cancel has been requested."""
    if cancelled is not None and cancelled.is_set():
        raise Cancelled()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    try:
        out, err = await wait_or_cancel(proc.communicate(input.encode() if input is not None else None), cancelled, timeout)
    except asyncio.TimeoutError:
        raise CommandError(what, argv, None, f"timed out after {timeout} s") from None
    finally:
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await proc.wait()
    result = Result(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise CommandError(what, argv, proc.returncode, result.stderr or result.stdout)
    return result


def pid_alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
