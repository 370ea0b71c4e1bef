"""The remote-execution interface the resources use (implementation: see the modules beside)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Union

Progress = Callable[[str], Awaitable[None]]
PerHost = Union[str, Mapping[str, str]]  # one text for every host, or each host's own


@dataclass
class HostResult:
    host: str
    rc: int  # -1 when the host was unreachable or the command timed out
    stdout: str  # trailing newlines stripped, as Ansible's command/shell modules do
    stderr: str
    started_at: str  # ISO 8601, UTC
    duration_s: float
    status: str = "ok"  # ok | failed | unreachable | timeout

    def as_output(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "rc": self.rc,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "startedAt": self.started_at,
            "durationS": round(self.duration_s, 3),
            "status": self.status,
        }


class PatternError(ValueError):
    """The pattern names an unknown role/host or matches no host (message says which)."""


class RemoteError(Exception):
    """The run could not be attempted at all (bad inventory, missing ansible); no host ran anything."""


def match_hosts(inventory: dict[str, Any], pattern: str) -> list[str]:
    from .patterns import match_hosts as impl

    return impl(inventory, pattern)


async def run_shell(
    inventory: dict[str, Any],
    pattern: str,
    command: PerHost,
    *,
    environment: Optional[dict[str, str]] = None,
    become: bool = False,
    background: Optional[str] = None,
    timeout: float = 0,
    cancelled: Any = None,
    progress: Optional[Progress] = None,
    engine: str = "auto",
    ready_port: Optional[int] = None,
    ready_command: Optional[PerHost] = None,
    ready_timeout: float = 60.0,
) -> list[HostResult]:
    """See runner.run_shell: `command` (and `ready_command`) may map each host to its own text."""
    from .runner import run_shell as impl

    return await impl(
        inventory,
        pattern,
        command,
        environment=environment,
        become=become,
        background=background,
        timeout=timeout,
        cancelled=cancelled,
        progress=progress,
        engine=engine,
        ready_port=ready_port,
        ready_command=ready_command,
        ready_timeout=ready_timeout,
    )


async def stop_background(
    inventory: dict[str, Any],
    pattern: str,
    tag: str,
    *,
    cancelled: Any = None,
    progress: Optional[Progress] = None,
    become: bool = False,
) -> list[HostResult]:
    """Stop what `run_shell(..., background=tag)` started on these hosts (its whole process group).

    `become` (added, default False): pass the value the command was started with, so a non-root
    login user finds the pidfile in the become user's home (no difference when logging in as root)."""
    from .runner import stop_background as impl

    return await impl(inventory, pattern, tag, cancelled=cancelled, progress=progress, become=become)
