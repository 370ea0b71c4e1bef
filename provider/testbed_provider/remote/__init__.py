"""Remote execution: run steps on a reservation's hosts from its inventory alone.

`run_shell` runs one shell command (or each host's own rendering of it) on the hosts matching
an Ansible pattern and returns one `HostResult` per host; `stop_background` stops what a
background run started; `match_hosts` resolves a pattern exactly as Ansible does. The functions
load on first use (PEP 562): their modules import ansible-core's pieces, which a plugin start
or a Check that needs none of them should not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..common.results import HostResult
from .api import PatternError, RemoteError

if TYPE_CHECKING:
    from .patterns import match_hosts
    from .runner import run_shell, stop_background

__all__ = ["HostResult", "PatternError", "RemoteError", "match_hosts", "run_shell", "stop_background"]


def __getattr__(name: str) -> Any:
    if name in ("run_shell", "stop_background"):
        from . import runner

        return getattr(runner, name)
    if name == "match_hosts":
        from .patterns import match_hosts

        return match_hosts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
