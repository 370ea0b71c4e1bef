"""The remote layer's own vocabulary: progress callbacks, per-host texts and its errors (its results,
HostResult, are in common.results; its functions are exported lazily by the package)."""

from __future__ import annotations

from typing import Awaitable, Callable, Mapping, Union

Progress = Callable[[str], Awaitable[None]]
PerHost = Union[str, Mapping[str, str]]  # one text for every host, or each host's own


class PatternError(ValueError):
    """The pattern names an unknown role/host or matches no host (message says which)."""


class RemoteError(Exception):
    """The run could not be attempted at all (bad inventory, missing ansible); no host ran anything."""
