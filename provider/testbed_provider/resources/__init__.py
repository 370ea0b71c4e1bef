"""One controller per schema resource token."""

from __future__ import annotations

from .base import ResourceController
from .command import Command
from .g5k_job import Job as G5kJob
from .reservation import Reservation

CONTROLLERS: dict[str, type[ResourceController]] = {c.token: c for c in (Reservation, Command, G5kJob)}
