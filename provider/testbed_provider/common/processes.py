"""Child processes: started one way, stopped on a deadline or Cancel, never left behind.

The provider is a grpc.aio server, so this is asyncio (with two small synchronous helpers for
code without a loop: atexit, the CLI, test fixtures). What every child gets:
- an argv list (never a shell string built from input) and an explicit environment;
- a session of its own by default, so a signal to the provider's process group (Ctrl-C in the
  terminal running `pulumi`) spares it and the provider decides what to stop;
- `run`: its output read while it runs, on pipes of our own rather than asyncio's (with
  asyncio's, `Process.wait()` (3.11) returns only once every holder of the pipe has closed it,
  and an SSH ControlMaster holds its clients' stdout/stderr until the remote command ends), so
  what a killed process printed is kept and a descendant holding a pipe cannot stretch the wait;
- nothing left running: on the deadline, Cancel, an exception or the caller's own task being
  cancelled, the child is killed (SIGTERM first when a grace is given) and waited for. Nothing
  is started once Cancel has been requested.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, AsyncIterator, Callable, Mapping, Optional, Sequence, Union

from . import deadlines

# A fixed, minimal environment: commands (and the daemons they start) must not depend on the
# provider's PATH or locale, and must not inherit anything secret from it.
SAFE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
DRAIN_GRACE = 0.5  # seconds to wait for end-of-file on stdout/stderr once the process has exited
CHUNK = 1 << 16

EXITED, TIMED_OUT, CANCELLED = "exited", "timeout", "cancelled"

Stream = Union[int, IO[bytes], None]  # what asyncio.create_subprocess_exec takes for stdin/stdout/stderr


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-05-09T07:35:25.123Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Finished:
    outcome: str  # exited | timeout | cancelled
    returncode: Optional[int]
    stdout: bytes
    stderr: bytes
    started_at: str
    duration_s: float


def kill(proc: "asyncio.subprocess.Process | subprocess.Popen[bytes]", sig: int = signal.SIGKILL, group: bool = False) -> None:
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


async def start(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]],
    stdin: Stream = subprocess.DEVNULL,
    stdout: Stream = subprocess.DEVNULL,
    stderr: Stream = subprocess.DEVNULL,
    cwd: Optional[str] = None,
    new_session: bool = True,
) -> asyncio.subprocess.Process:
    """Start `argv` (env None: inherit ours, for clients that need the user's SSH agent)."""
    return await asyncio.create_subprocess_exec(
        *argv, stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env) if env is not None else None, cwd=cwd, start_new_session=new_session
    )


async def reap(proc: asyncio.subprocess.Process, grace: float = 0.0, sig: Optional[int] = None) -> int:
    """Wait up to `grace` seconds for `proc` to exit (after `sig`, when given), then SIGKILL it,
    and wait for it: it never outlives the call, even when the caller is cancelled meanwhile."""
    try:
        if proc.returncode is None and sig is not None:
            kill(proc, sig)
        if proc.returncode is None and grace > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
    finally:
        if proc.returncode is None:
            kill(proc)
    return await proc.wait()


@contextlib.asynccontextmanager
async def child(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]],
    stdin: Stream = subprocess.DEVNULL,
    stdout: Stream = subprocess.DEVNULL,
    stderr: Stream = subprocess.DEVNULL,
    cwd: Optional[str] = None,
    grace: float = 0.0,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child for callers that talk to it while it runs (a prober, a pipeline): on leaving the
    block, however, it is reaped (`reap`, after `grace` seconds when it is still running)."""
    proc = await start(argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd)
    try:
        yield proc
    finally:
        await reap(proc, grace)


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


async def run(
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]],
    stdin: Optional[bytes] = None,
    deadline: Optional[float] = None,
    cancelled: Optional[asyncio.Event] = None,
    cwd: Optional[str] = None,
    term_grace: float = 0.0,
    kill_group: bool = False,
    on_stdout: Optional[Callable[[bytes], None]] = None,
) -> Finished:
    """Run `argv` to completion, feeding `stdin` (None: /dev/null); kill it at the monotonic
    `deadline` or on Cancel (after SIGTERM and `term_grace` seconds when that is > 0).

    `kill_group` kills its whole process group. Not for ssh: the ProxyCommand of a connection
    that became a ControlMaster stays in that group, and killing it would cut the master.
    `on_stdout` sees every chunk of stdout as it arrives."""
    started_at, t0 = utc_now(), time.monotonic()
    if cancelled is not None and cancelled.is_set():
        return Finished(CANCELLED, None, b"", b"", started_at, 0.0)
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    try:
        proc = await start(
            argv, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=w_out, stderr=w_err, cwd=cwd
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
    pidfd = _pidfd(proc.pid)
    outcome = EXITED
    try:
        waited = await deadlines.wait(exited, deadline, cancelled)
        if waited != deadlines.DONE and _has_exited(pidfd):
            await exited  # it had ended when Cancel or the deadline came, its exit not yet seen: it finished
        elif waited != deadlines.DONE:
            outcome = TIMED_OUT if waited == deadlines.TIMED_OUT else CANCELLED
            if term_grace > 0:
                kill(proc, signal.SIGTERM, kill_group)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), term_grace)
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
        if pidfd is not None:
            os.close(pidfd)
    return Finished(outcome, proc.returncode, bytes(out), bytes(err), started_at, time.monotonic() - t0)


def _pidfd(pid: int) -> Optional[int]:
    """A pidfd of our fresh child (readable once it has ended), or None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _has_exited(pidfd: Optional[int]) -> bool:
    """Whether the child has ended (asyncio's watcher may not have told us yet)."""
    return pidfd is not None and bool(select.select([pidfd], [], [], 0)[0])


# ---- without an event loop -----------------------------------------------------------------------


def reap_sync(proc: "subprocess.Popen[bytes]", grace: float = 0.0, sig: Optional[int] = None) -> int:
    """`reap` for a subprocess.Popen: `sig` first when given, `grace` seconds, SIGKILL, wait."""
    if proc.poll() is None and sig is not None:
        kill(proc, sig)
    try:
        return proc.wait(grace)
    except subprocess.TimeoutExpired:
        kill(proc)
        return proc.wait()


def run_all_sync(argvs: Sequence[Sequence[str]], *, env: Optional[Mapping[str, str]], timeout: float) -> None:
    """Run short commands all at once, output discarded, each killed if still running once
    `timeout` seconds have passed since they started (one deadline for all)."""
    procs = []
    for argv in argvs:
        try:
            procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,
                )
            )
        except OSError:
            pass
    deadline = deadlines.after(timeout)
    for p in procs:
        reap_sync(p, deadlines.remaining(deadline) or 0.0)


def text(data: bytes) -> str:
    """Output as Ansible's command/shell modules show it: decoded, trailing newlines stripped."""
    return data.decode("utf-8", errors="replace").rstrip("\r\n")
