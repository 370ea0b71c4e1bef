"""G5kTestbed: the Reservation backend on Grid'5000 (one OAR job per site, deployments, KaVLAN)."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from ..base import CheckFailure, Progress, ReservationError, ReservationSpec, Testbed
from .settings import G5kSettings


class G5kTestbed(Testbed):
    name = "g5k"

    def __init__(self, settings: Optional[G5kSettings], cancelled: Optional[asyncio.Event] = None) -> None:
        self.settings = settings
        self.cancelled = cancelled or asyncio.Event()

    def preflight(self) -> Optional[str]:
        if self.settings is None:
            return "the g5k backend is not configured: set `testbed:g5kConfigFile` or `testbed:g5kUri` (see `testbed:g5k*` keys)"
        return None

    def validate(self, spec: ReservationSpec) -> list[CheckFailure]:
        return [CheckFailure("machines", "Reservation on the g5k backend is not available yet; use testbed:g5k:Job")]

    async def reserve(self, spec: ReservationSpec, owner: str, progress: Progress) -> dict[str, Any]:
        raise ReservationError("Reservation on the g5k backend is not available yet", None)

    async def reconcile(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        raise ReservationError("Reservation on the g5k backend is not available yet", state)

    async def inspect(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        return None

    async def release(self, state: dict[str, Any], progress: Progress) -> None:
        return None
