"""Times and durations as `testbed metrics` and `testbed plot` take them.

A time is RFC 3339 (`2024-05-01T12:00:00Z`; without an offset, local time), unix seconds
(`1714564800`), `now`, or relative to now: `-10m`, `now-1h30m`. "Now" is the caller's: the
present for a live collector, the end of the recorded data for a backup (a backup's last ten
minutes are `--from -10m`, whenever it was made). Durations are Prometheus': `90s`, `1h30m`,
`500ms`, or a plain number of seconds.
"""

from __future__ import annotations

import datetime as dt
import re

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(?:([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y))")


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus duration or a plain number; ValueError otherwise."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if not text or _DURATION.sub("", text):
        raise ValueError(f"bad duration `{text}` (e.g. 30s, 10m, 1h30m)")
    return sum(float(n) * UNITS[u] for n, u in _DURATION.findall(text))


def parse_time(text: str, now: float) -> float:
    """Unix seconds of `text` (see the module's doc); ValueError with the accepted forms otherwise."""
    t = text.strip()
    if t == "now":
        return now
    m = re.fullmatch(r"(?:now)?\s*([-+])\s*(\S+)", t)
    if m:
        d = parse_duration(m.group(2))
        return now - d if m.group(1) == "-" else now + d
    try:
        return float(t)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(f"bad time `{text}`: use RFC 3339 (2024-05-01T12:00:00Z), unix seconds, `now` or `-10m`") from None
    if when.tzinfo is None:
        when = when.astimezone()  # the local time zone, as a user typing a wall-clock time means
    return when.timestamp()


def rfc3339(seconds: float) -> str:
    """UTC, to the millisecond when there is one (Prometheus' resolution)."""
    when = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    ms = int(round(seconds * 1000)) % 1000
    return text + (f".{ms:03d}" if ms else "") + "Z"
