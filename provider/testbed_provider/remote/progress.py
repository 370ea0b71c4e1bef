"""Progress lines for a step: "running on 20 hosts…", "12/20 hosts done", at most ~3 per second.

Lines only ever carry counts and host names: never the command, its environment or key
material (the command may embed secrets; progress is shown live and logged by the engine).
A failing progress callback must not fail the step, so its errors are swallowed.
"""

from __future__ import annotations

import time
from typing import Optional

from ..common.results import HostResult
from .api import Progress

INTERVAL = 0.3  # seconds between two "k/N hosts done" lines (the last one always shows)


class Reporter:
    def __init__(self, progress: Optional[Progress], total: int, what: str = "running"):
        self.progress = progress
        self.total = total
        self.what = what
        self.done = 0
        self.last = 0.0

    async def say(self, line: str) -> None:
        if self.progress is None:
            return
        try:
            await self.progress(line)
        except Exception:  # noqa: BLE001 - progress is best effort
            pass

    async def start(self, engine: str) -> None:
        self.last = time.monotonic()
        await self.say(f"{self.what} on {self.total} host{'s' if self.total != 1 else ''} ({engine})…")

    async def finished(self, result: HostResult) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done < self.total and now - self.last < INTERVAL:
            return
        self.last = now
        await self.say(f"{self.done}/{self.total} hosts done")

    async def summary(self, results: list[HostResult]) -> None:
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        if set(counts) <= {"ok"}:
            return
        parts = [f"{n} {status}" for status, n in sorted(counts.items())]
        bad = [r.host for r in results if r.status != "ok"]
        shown = ", ".join(bad[:8]) + (" …" if len(bad) > 8 else "")
        await self.say(f"{len(results)} hosts: {', '.join(parts)} ({shown})")
