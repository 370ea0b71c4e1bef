"""The one interface every testbed backend implements (local namespaces now, Grid'5000 next).

Resources speak only this interface, so a Reservation written for one stack runs on another
backend unchanged. Backends receive validated, typed specs and return plain JSON-able state
dicts that the resource layer stores in Pulumi state; every later call (inspect, reconcile,
release) is driven by that state alone, so destroy works after a provider crash.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from ..common.results import CheckFailure

# Progress reporter: an engine log line shown live in the Pulumi CLI (never a secret).
Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class MachineGroup:
    """`count` machines carrying the same roles (EnOSlib's `add_machine(roles=…, number=…)`)."""

    roles: list[str]
    count: int
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific, validated by the backend
    kind: str = "host"  # "host": the testbed's own machines; "vm": VMs it runs
    vm: Optional["VmSize"] = None  # kind "vm": size and image (resolved from flavour or cores/memoryMb)


@dataclass(frozen=True)
class VmSize:
    """A VM group's size and image; `flavour` is what the user wrote (None: explicit or default
    cores and memory), kept so a failure can name the property that set the memory."""

    cores: int
    memory_mb: int
    flavour: Optional[str] = None
    image: Optional[str] = None  # None: the project's default image


@dataclass(frozen=True)
class NetworkSpec:
    """An experiment network joining every machine that has one of `roles` (all machines if None)."""

    id: str
    roles: Optional[list[str]] = None
    cidr: Optional[str] = None


@dataclass(frozen=True)
class ReservationSpec:
    name: str
    machines: list[MachineGroup]
    networks: list[NetworkSpec] = field(default_factory=list)


class ReservationError(Exception):
    """A reservation failed after something was created.

    `state` holds everything that exists (so the resource layer can record it as a partially
    created resource and nothing is orphaned); `None` means nothing is left behind.
    """

    def __init__(self, message: str, state: Optional[dict[str, Any]] = None):
        super().__init__(message)
        self.state = state


class Testbed(abc.ABC):
    """A backend that turns a ReservationSpec into reachable hosts."""

    name: str

    def preflight(self) -> Optional[str]:
        """Why this backend cannot run in this environment (missing privileges or tools), or None."""
        return None

    @abc.abstractmethod
    def validate(self, spec: ReservationSpec) -> list[CheckFailure]:
        """Backend-specific input rules (accepted options, address ranges); pure, no side effects."""

    async def validate_remote(self, spec: ReservationSpec) -> list[CheckFailure]:
        """Rules only the testbed's own API can judge (sites, clusters, node counts); advisory:
        none when the API does not answer quickly. Runs after `validate` passed."""
        return []

    async def check_access(self) -> list[CheckFailure]:
        """At CheckConfig: whether the configured credentials are accepted (remote testbeds)."""
        return []

    def planned_names(self, spec: ReservationSpec) -> Optional[list[str]]:
        """The host names `spec` will get, in spec order, when the testbed derives them from
        the spec alone (patterns are then checked before anything exists); None otherwise."""
        return None

    async def forecast(self, spec: ReservationSpec) -> Optional[tuple[bool, str]]:
        """Preview: when the reservation could start, as (is it a warning, a line for the CLI);
        None when the testbed has no queue or cannot tell."""
        return None

    @abc.abstractmethod
    async def reserve(self, spec: ReservationSpec, owner: str, progress: Progress) -> dict[str, Any]:
        """Create everything and wait until every host answers SSH; return the state.

        `owner` is the Pulumi URN, recorded so leftovers of an interrupted reserve can be found.
        Raises ReservationError (with the partial state, or None after cleaning up itself).
        """

    @abc.abstractmethod
    async def reconcile(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        """Bring an existing reservation to `spec` in place (add, remove or repair hosts)."""

    @abc.abstractmethod
    async def inspect(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The reservation as it really is now (hosts lost outside Pulumi removed), or None if gone."""

    def describe(self, state: dict[str, Any]) -> str:
        """What `state` holds, for the line saying what was released: the ready hosts, and
        what else a partial reservation recorded (a release frees that too)."""
        return hosts_summary([h["name"] for h in state.get("hosts", [])])

    @abc.abstractmethod
    async def release(self, state: dict[str, Any], progress: Progress) -> None:
        """Free everything recorded in `state`; succeeds when it is already gone."""

    async def sweep_interrupted(self, stack: str, progress: Progress) -> None:
        """Free what creates in this stack left when their provider died before answering: no
        state records them (the engine got no answer), so no Delete will ever come. Called at
        Configure with `stack` = `urn:pulumi:<stack>::<project>::`; only creates whose creator is
        provably gone may be touched, and a failure is reported through `progress`, never raised.

        Default: nothing. The g5k backend keeps it: its leftovers are OAR jobs tagged with a hash
        of their URN, adopted (or deleted) by the next create of that URN; finding a stack's
        jobs here would mean listing every site's jobs at every Configure, and the tag's hash
        cannot be matched against a stack anyway."""
        return None


def hosts_summary(names: list[str], shown: int = 6) -> str:
    """`3 host(s) [server-1, client-1, client-2]`, the list cut after `shown` names."""
    listed = ", ".join(names[:shown]) + (f", … ({len(names)} in all)" if len(names) > shown else "")
    return f"{len(names)} host(s) [{listed}]"
