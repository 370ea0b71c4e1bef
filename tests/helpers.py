"""Shared test helpers: the repository layout, namespace listing, root detection."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "provider" / "bin" / "pulumi-resource-testbed"
IS_ROOT = os.geteuid() == 0


def netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def namespaces_of(reservation_id: str) -> set[str]:
    """The network namespaces of one reservation (its id is their prefix, without the dash)."""
    return {ns for ns in netns_list() if ns.startswith(reservation_id + "-")}


class Failure:
    """A Check failure as the provider sends it: the property path leads the reason
    (`machines[0].count: must be at least 1`) and the wire's `property` is empty."""

    def __init__(self, wire) -> None:
        assert not wire.property, f"Check failures carry their path in the reason, not in `property`: {wire}"
        self.property, sep, self.reason = wire.reason.partition(": ")
        if not sep:
            self.property, self.reason = "", wire.reason


def failures_of(response) -> list[Failure]:
    return [Failure(f) for f in response.failures]


def failure_map(response) -> dict[str, str]:
    return {f.property: f.reason for f in failures_of(response)}
