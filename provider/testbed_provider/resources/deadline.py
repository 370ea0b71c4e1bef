"""Per-operation stop signal: the engine's Cancel, or the resource's customTimeouts.

The engine passes `customTimeouts` to the provider (in seconds) but does not enforce them, so
each Create/Update/Delete runs under a deadline. Backends only watch one event; when it fires
they stop waiting and hand back what exists, and the message says which of the two it was.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import AsyncIterator


@dataclass
class Deadline:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    timeout: float = 0.0
    expired: bool = False

    def explain(self, message: str) -> str:
        if self.expired:
            return f"timed out after {self.timeout:g} s (customTimeouts): {message}"
        return message


@contextlib.asynccontextmanager
async def deadline(cancelled: asyncio.Event, timeout: float) -> AsyncIterator[Deadline]:
    state = Deadline(timeout=timeout)

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
