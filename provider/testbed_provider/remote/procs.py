"""Local child processes for the remote layer: feed stdin, capture output, stop on a deadline.

The provider is a grpc.aio server, so everything here is asyncio. Output is read while the
process runs (not `communicate()`): when it has to be killed, what it printed so far is kept;
and after it exits we wait for end-of-file only briefly, because a descendant (an SSH
ControlMaster or its ProxyCommand going to the background) may hold a pipe open long after.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

DRAIN_GRACE = 0.5  # seconds to wait for end-of-file on stdout/stderr once the process has exited
CHUNK = 1 << 16

EXITED, TIMED_OUT, CANCELLED = "exited", "timeout", "cancelled"


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-05-09T07:35:25.123Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def text(data: bytes) -> str:
    """Decoded output with trailing newlines stripped, as Ansible's command/shell modules do."""
    return data.decode("utf-8", errors="replace").rstrip("\r\n")


@dataclass
class Finished:
    outcome: str  # exited | timeout | cancelled
    returncode: Optional[int]
    stdout: bytes
    stderr: bytes
    started_at: str
    duration_s: float


async def wait_until(aw: "asyncio.Future | asyncio.Task", deadline: Optional[float], cancelled: Optional[asyncio.Event]) -> str:
    """Wait for `aw` (left running otherwise) until the monotonic `deadline` or Cancel."""
    waiters: set[asyncio.Future] = {aw}
    stopper = None
    if cancelled is not None:
        if cancelled.is_set():
            return CANCELLED
        stopper = asyncio.ensure_future(cancelled.wait())
        waiters.add(stopper)
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopper is not None:
            stopper.cancel()
    if aw in done:
        return EXITED
    return CANCELLED if cancelled is not None and cancelled.is_set() else TIMED_OUT


async def _pump(fd: int, buf: bytearray, sink: Optional[Callable[[bytes], None]], taken: set[int]) -> None:
    """Read the pipe `fd` into `buf` until end of file or until cancelled, then close it (a late
    writer gets EPIPE). Adds `fd` to `taken` once it owns it (the caller closes it otherwise)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK)
    taken.add(fd)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    try:
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                return
            buf += chunk
            if sink is not None:
                sink(chunk)
    finally:
        transport.close()


async def _feed(proc: asyncio.subprocess.Process, data: Optional[bytes]) -> None:
    if proc.stdin is None:
        return
    try:
        if data:
            proc.stdin.write(data)
            await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # it exited before reading everything (e.g. could not connect): its status says why
    finally:
        proc.stdin.close()


def kill(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL, group: bool = False) -> None:
    """Signal the child, or its whole process group (it was started in a session of its own)."""
    if group:
        try:
            os.killpg(proc.pid, sig)
            return
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass


async def run(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    stdin: Optional[bytes] = None,
    deadline: Optional[float] = None,
    cancelled: Optional[asyncio.Event] = None,
    cwd: Optional[str] = None,
    term_grace: float = 0.0,
    kill_group: bool = False,
    on_stdout: Optional[Callable[[bytes], None]] = None,
) -> Finished:
    """Run `argv` in a new session, feeding `stdin`; kill it at `deadline` or on Cancel (after
    SIGTERM and `term_grace` seconds when that is > 0).

    `kill_group` kills its whole process group. Not for ssh: the ProxyCommand of a connection
    that became a ControlMaster stays in that group, and killing it would cut the master.
    `on_stdout` sees every chunk of stdout as it arrives."""
    started_at, t0 = utc_now(), time.monotonic()
    # Our own pipes for stdout/stderr, not asyncio's: with asyncio's, Process.wait() (3.11)
    # returns only once every holder of the pipe has closed it, and an SSH ControlMaster holds
    # its clients' stdout/stderr (passed over the control socket) until the remote command
    # ends, so a killed client would be "waited for" as long as the remote command runs.
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=w_out,
            stderr=w_err,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        for fd in (r_out, r_err):
            os.close(fd)
        raise
    finally:
        os.close(w_out)
        os.close(w_err)
    out, err = bytearray(), bytearray()
    taken: set[int] = set()
    pumps = [asyncio.ensure_future(_pump(r_out, out, on_stdout, taken)), asyncio.ensure_future(_pump(r_err, err, None, taken))]
    feeder = asyncio.ensure_future(_feed(proc, stdin))
    exited = asyncio.ensure_future(proc.wait())
    try:
        outcome = await wait_until(exited, deadline, cancelled)
        if outcome != EXITED:
            if term_grace > 0:
                kill(proc, signal.SIGTERM, kill_group)
                try:
                    await asyncio.wait_for(asyncio.shield(exited), term_grace)
                except asyncio.TimeoutError:
                    pass
            kill(proc, group=kill_group)
            feeder.cancel()
            await exited
        # Killed: a ControlMaster may keep writing until the remote command is stopped; take
        # what has arrived. Exited normally: the end of the output is normally there already.
        await asyncio.wait(pumps, timeout=DRAIN_GRACE if outcome == EXITED else 0.1)
    finally:
        for task in (*pumps, feeder):
            task.cancel()
        await asyncio.gather(*pumps, feeder, return_exceptions=True)  # closes the pipes
        for fd in (r_out, r_err):
            if fd not in taken:
                os.close(fd)
        if proc.returncode is None:  # we were cancelled ourselves
            kill(proc, group=kill_group)
            exited.cancel()
    return Finished(outcome, proc.returncode, bytes(out), bytes(err), started_at, time.monotonic() - t0)
