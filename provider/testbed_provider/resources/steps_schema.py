"""Typed definition of what every remote step (Command, Play, Fetch, getFacts) takes first: a
Reservation's inventory and a host pattern."""

from __future__ import annotations

from dataclasses import dataclass

from ..typed.model import prop
from .reservation_schema import Inventory

NON_BLANK = r"\s*\S[\s\S]*"  # anything but blank text
PATTERN = NON_BLANK  # Ansible's own grammar is checked against the inventory
PATTERN_HINT = "an Ansible host pattern over roles and host names, e.g. `server`, `client:!server`, `all`"
SECONDS_HINT = "a number of seconds ≥ 0 (0: no limit)"


@dataclass(kw_only=True)
class InventoryArgs:
    """What everything run on a Reservation's hosts takes first (steps, services)."""

    inventory: Inventory = prop(
        "A Reservation's `inventory` output: it runs from stack state alone (destroy needs nothing else).",
        secret=True,
        hint="a Reservation's `inventory` output",
    )


@dataclass(kw_only=True)
class StepArgs(InventoryArgs):
    on: str = prop(
        "Ansible host pattern over roles and host names (`server`, `client:!server`, `server-1`, `all`).",
        default="all",
        fill=True,
        pattern=PATTERN,
        hint=PATTERN_HINT,
    )
