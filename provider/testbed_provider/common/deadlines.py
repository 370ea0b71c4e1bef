"""When to stop waiting: deadlines, the engine's Cancel, an operation's customTimeouts.

A deadline is an instant of `time.monotonic()` (None: never), so it is immune to the wall clock
being set or slewed, and one deadline is shared by everything an operation waits for (a step's
timeout covers all its hosts, not each of them anew). Cancel is an `asyncio.Event`: every wait
here watches it too, and what is abandoned is stopped, never left running behind the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Optional, TypeVar, overload

T = TypeVar("T")

# How a wait ended (see `wait`).
DONE, TIMED_OUT, CANCELLED = "done", "timeout", "cancelled"


class Cancelled(Exception):
    """The engine asked us to stop (Cancel RPC, or the operation's stop event) while we waited."""


@overload
def after(seconds: float) -> float: ...
@overload
def after(seconds: None) -> None: ...
@overload
def after(seconds: Optional[float]) -> Optional[float]: ...


def after(seconds: Optional[float]) -> Optional[float]:
    """The deadline `seconds` from now (None: no deadline)."""
    return None if seconds is None else time.monotonic() + seconds


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until `deadline`, never negative (None: no deadline)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def passed(deadline: Optional[float]) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def extended(deadline: Optional[float], seconds: float) -> Optional[float]:
    """`deadline` moved `seconds` later (no deadline stays none): a grace past a step's timeout."""
    return None if deadline is None else deadline + seconds


async def wait(aw: "asyncio.Future[T] | asyncio.Task[T]", deadline: Optional[float], cancelled: Optional[asyncio.Event]) -> str:
    """Wait for `aw` until `deadline` or Cancel: DONE, TIMED_OUT or CANCELLED. `aw` is left
    running otherwise (the caller stops it: a process to kill, a transfer to abort)."""
    waiters: set[asyncio.Future[Any]] = {aw}
    stopper = None
    if cancelled is not None:
        if cancelled.is_set():
            return CANCELLED
        stopper = asyncio.ensure_future(cancelled.wait())
        waiters.add(stopper)
    try:
        done, _ = await asyncio.wait(waiters, timeout=remaining(deadline), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopper is not None:
            stopper.cancel()
    if aw in done:
        return DONE
    return CANCELLED if cancelled is not None and cancelled.is_set() else TIMED_OUT


async def wait_or_raise(aw: Awaitable[T], deadline: Optional[float], cancelled: Optional[asyncio.Event]) -> T:
    """The result of `aw`, unless Cancel (→ Cancelled) or `deadline` (→ TimeoutError) comes
    first; then `aw` is cancelled and awaited, so nothing of it runs on behind the caller."""
    task = asyncio.ensure_future(aw)
    try:
        outcome = await wait(task, deadline, cancelled)
    except BaseException:
        task.cancel()
        raise
    if outcome == DONE:
        return task.result()
    task.cancel()
    try:
        await task
    except BaseException:  # noqa: BLE001 - the task is abandoned
        pass
    if outcome == CANCELLED:
        raise Cancelled()
    raise TimeoutError()


async def sleep(seconds: float, cancelled: Optional[asyncio.Event]) -> None:
    """Sleep `seconds`, or raise Cancelled as soon as Cancel comes (also when it came before)."""
    if cancelled is None:
        await asyncio.sleep(seconds)
        return
    if cancelled.is_set():
        raise Cancelled()
    try:
        await asyncio.wait_for(cancelled.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        return
    raise Cancelled()


@dataclass
class Deadline:
    """One operation's stop signal (see `deadline`): `stop` is set on Cancel or at expiry."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    timeout: float = 0.0
    expired: bool = False
    at: Optional[float] = None  # the monotonic deadline, None without a timeout

    def explain(self, message: str) -> str:
        if self.expired:
            return f"timed out after {self.timeout:g} s (customTimeouts): {message}"
        return message


@contextlib.asynccontextmanager
async def deadline(cancelled: asyncio.Event, timeout: float) -> AsyncIterator[Deadline]:
    """An operation (Create/Update/Delete) under the engine's Cancel and its customTimeouts.

    The engine passes `customTimeouts` to the provider (in seconds) but does not enforce them;
    backends watch one event, `stop`, and when it fires they stop waiting and hand back what
    exists; `explain` says which of the two it was. `timeout` 0: no time limit."""
    state = Deadline(timeout=timeout, at=after(timeout) if timeout > 0 else None)

    async def on_cancel() -> None:
        await cancelled.wait()
        state.stop.set()

    async def on_timeout() -> None:
        await asyncio.sleep(timeout)
        state.expired = True
        state.stop.set()

    watchers = [asyncio.create_task(on_cancel())]
    if timeout > 0:
        watchers.append(asyncio.create_task(on_timeout()))
    try:
        yield state
    finally:
        for task in watchers:
            task.cancel()
