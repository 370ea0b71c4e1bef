"""A progress line every few seconds while something long runs, so the Pulumi CLI never goes
silent (an image build, an upload to a node, a package install)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator, Awaitable, Callable

EVERY = 10.0


@contextlib.asynccontextmanager
async def ticking(say: Callable[[str], Awaitable[None]], line: Callable[[float], str], every: float = EVERY) -> AsyncIterator[None]:
    """Call `say(line(seconds since start))` every `every` seconds until the block ends."""
    started = time.monotonic()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(every)
            await say(line(time.monotonic() - started))

    task = asyncio.ensure_future(ticker())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
