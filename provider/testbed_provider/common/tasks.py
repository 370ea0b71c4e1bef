"""Running siblings together where one failure makes the others pointless (SSH waits, VM starts)."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Iterable


async def all_or_none(aws: Iterable[Awaitable[Any]]) -> list[Any]:
    """Their results, in order; on the first failure the others are cancelled (and waited for,
    so none is left running) and that failure is raised."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
