"""Is a recorded pid still the process it was? Pids are reused; a start time is not.

Everything that records a process to stop or check later (a host's sshd, a create's creator)
records its pid and its start time, and acts only when both still match: never by name, since
on the local testbed every host shares one kernel.
"""

from __future__ import annotations

import os
from typing import Optional


def alive(pid: Optional[int]) -> bool:
    """A process with this pid exists (possibly a zombie, possibly someone else's)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state first), or [] if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def start_time(pid: Optional[int]) -> Optional[int]:
    """The process's start time in clock ticks since boot: with its pid, what identifies it."""
    if not pid:
        return None
    try:
        return int(_stat(pid)[19])
    except (ValueError, IndexError):
        return None


def running(pid: int) -> bool:
    """The process exists and has not exited: a zombie (killed, not yet reaped by its parent:
    the engine reaps a killed plugin when it gets to it) has."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def same_process(pid: object, started: object) -> bool:
    """Whether the process recorded as (`pid`, `started`) still runs: not exited, not a zombie,
    and not another process that got its pid since (another start time)."""
    return isinstance(pid, int) and isinstance(started, int) and alive(pid) and running(pid) and start_time(pid) == started
