"""Testbed backends, one package each, all behind testbeds.base.Testbed."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Optional

from .base import Testbed


def _local(cancelled: asyncio.Event, config: Any = None) -> Testbed:
    from .local import LocalTestbed  # imported lazily: plugin start-up stays fast

    # The readiness timeout can be shortened to provoke a partial failure in tests.
    timeout = float(os.environ.get("PULUMI_TESTBED_LOCAL_READY_TIMEOUT", "60"))
    return LocalTestbed(cancelled=cancelled, ready_timeout=timeout)


def _g5k(cancelled: asyncio.Event, config: Any = None) -> Testbed:
    from .g5k.testbed import G5kTestbed  # imported lazily: python-grid5000 loads only when used

    return G5kTestbed(settings=getattr(config, "g5k", None), cancelled=cancelled)


def _static(cancelled: asyncio.Event, config: Any = None) -> Testbed:
    from .static.testbed import StaticTestbed

    return StaticTestbed(settings=getattr(config, "static", None), cancelled=cancelled)


def _chameleon(cancelled: asyncio.Event, config: Any = None) -> Testbed:
    from .chameleon.testbed import ChameleonTestbed  # imported lazily: openstacksdk loads only when used

    return ChameleonTestbed(settings=getattr(config, "chameleon", None), cancelled=cancelled)


BACKENDS: dict[str, Callable[[asyncio.Event, Any], Testbed]] = {"local": _local, "g5k": _g5k, "static": _static, "chameleon": _chameleon}
PLANNED_BACKENDS: set[str] = set()


def make_testbed(name: str, cancelled: asyncio.Event, config: Optional[Any] = None) -> Testbed:
    """`config`: the ProviderConfig (the g5k backend takes its API settings from it)."""
    return BACKENDS[name](cancelled, config)
