"""Testbed backends, one package each, all behind testbeds.base.Testbed."""

from __future__ import annotations

import asyncio
import os
from typing import Callable

from .base import Testbed


def _local(cancelled: asyncio.Event) -> Testbed:
    from .local import LocalTestbed  # imported lazily: plugin start-up stays fast

    # The readiness timeout can be shortened to provoke a partial failure in tests.
    timeout = float(os.environ.get("PULUMI_TESTBED_LOCAL_READY_TIMEOUT", "60"))
    return LocalTestbed(cancelled=cancelled, ready_timeout=timeout)


BACKENDS: dict[str, Callable[[asyncio.Event], Testbed]] = {"local": _local}
PLANNED_BACKENDS = {"g5k"}


def make_testbed(name: str, cancelled: asyncio.Event) -> Testbed:
    return BACKENDS[name](cancelled)
