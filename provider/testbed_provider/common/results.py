"""The results every layer speaks: a Check failure (testbeds, resources, the generic Check, the
gRPC server) and what a step did on one host (the remote layer, the resources, the CLI).

Plain data: the resources shape them into schema outputs, the server into gRPC messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckFailure:
    """A bad input, reported by Check as a failure naming the property path (e.g. `machines[0].count`)."""

    property: str
    reason: str


@dataclass
class HostResult:
    host: str
    rc: int  # -1 when the host was unreachable or the command timed out
    stdout: str  # trailing newlines stripped, as Ansible's command/shell modules do
    stderr: str
    started_at: str  # ISO 8601, UTC
    duration_s: float
    status: str = "ok"  # ok | failed | unreachable | timeout
