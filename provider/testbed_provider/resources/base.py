"""What every resource controller implements, and the context the server hands it.

One controller per schema token (pulumi-command's model): the gRPC layer decodes requests into
plain dicts, dispatches on the token, and encodes whatever the controller returns.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import Any, Optional

from ..common.results import CheckFailure
from ..config import ProviderConfig
from ..protocol.engine_log import EngineLog
from .diff import DiffResult


@dataclass(frozen=True)
class PlannedHosts:
    """A Reservation's hosts as its inputs describe them, before it exists: each host's name
    (None where the testbed names hosts only when it reserves them) and roles."""

    hosts: tuple[tuple[Optional[str], tuple[str, ...]], ...]


@dataclass
class ProviderContext:
    """Provider-wide state: configuration, the engine log, and the Cancel signal."""

    config: ProviderConfig
    log: EngineLog
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    # Reservation URN → its planned hosts, from its last valid Check in this process: at the
    # first preview a step's inventory is unknown, and its pattern is checked against these.
    planned: dict[str, PlannedHosts] = field(default_factory=dict)


@dataclass
class CheckResult:
    inputs: dict[str, Any]
    failures: list[CheckFailure] = field(default_factory=list)


@dataclass
class ReadResult:
    id: str
    outputs: dict[str, Any]
    inputs: Optional[dict[str, Any]] = None


class ResourceController(abc.ABC):
    token: str

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx

    @classmethod  # noqa: B027 (a hook: most resources need no warm-up)
    def warm_up(cls) -> None:
        """Slow one-off preparation (e.g. imports) done in a thread once the provider is
        configured, so the first operation on this resource type does not pay for it."""

    def declassify(self, props: dict[str, Any]) -> None:  # noqa: B027 (a hook: most resources hold no such secret)
        """Mark the public parts of secret values in freshly decoded `props` (see
        steps.declassify); called by the server on every request before the controller runs."""

    @abc.abstractmethod
    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        """Validate and default the program's inputs: nothing changes anywhere (a remote testbed
        may be read, hence async). `urn`: the resource's, for names derived from it."""

    @abc.abstractmethod
    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult: ...

    @abc.abstractmethod
    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        """`timeout`: the resource's customTimeouts in seconds (0: none), enforced by the provider."""

    @abc.abstractmethod
    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        """The resource as it is now; None when it is gone."""

    @abc.abstractmethod
    async def update(
        self,
        id: str,
        urn: str,
        outputs: dict[str, Any],
        old_inputs: dict[str, Any],
        news: dict[str, Any],
        preview: bool,
        timeout: float = 0,
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None: ...
