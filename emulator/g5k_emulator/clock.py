"""The emulated clock: real time multiplied by a speed, so hours of walltime pass in seconds.

Emulated epoch seconds are what every job and deployment timestamp uses. The clock starts at
the real wall time on first start; on restart it resumes from the emulated time saved in the
state file (it stands still while the emulator is down, so a restart does not expire jobs).
"""

from __future__ import annotations

import time
from typing import Optional


class Clock:
    def __init__(self, speed: float = 1.0, start: Optional[float] = None):
        if speed <= 0:
            raise ValueError("the clock speed must be positive")
        self.speed = float(speed)
        self._real = time.monotonic()
        self._emulated = time.time() if start is None else float(start)

    def now(self) -> float:
        """Emulated epoch seconds."""
        return self._emulated + (time.monotonic() - self._real) * self.speed

    def _reanchor(self) -> None:
        self._emulated, self._real = self.now(), time.monotonic()

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("the clock speed must be positive")
        self._reanchor()
        self.speed = float(speed)

    def advance(self, seconds: float) -> None:
        """Jump forward (never backward: OAR's world has no time travel)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._reanchor()
        self._emulated += seconds

    def real_seconds(self, emulated_seconds: float) -> float:
        """How long `emulated_seconds` take in real time."""
        return emulated_seconds / self.speed
