"""The per-reservation manifest: who created a run dir, and whether that creation finished.

Written before anything else exists, so an interrupted create (plugin killed mid-reserve) leaves
a trail: a later reserve by the same owner finds manifests still `creating` whose creator is
dead and releases them. Entries of other owners are never touched.
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any, Optional

from .commands import pid_alive

NAME = "manifest.json"
CREATING, READY, FAILED = "creating", "ready", "failed"


def process_start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (tells a live creator from a reused pid)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def make_run_dir(run_root: str, prefix: str) -> str:
    """Claim `<run_root>/<prefix>` (mode 0700); fails if it already exists."""
    os.makedirs(run_root, mode=0o755, exist_ok=True)
    path = os.path.join(run_root, prefix)
    os.mkdir(path, 0o700)
    os.chmod(path, 0o700)
    return path


def write(run_dir: str, data: dict[str, Any]) -> None:
    """Atomically (re)write the manifest, mode 0600."""
    path = os.path.join(run_dir, NAME)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def create(run_dir: str, owner: str, prefix: str) -> dict[str, Any]:
    pid = os.getpid()
    data = {"owner": owner, "prefix": prefix, "status": CREATING, "creatorPid": pid,
            "creatorStartTime": process_start_time(pid), "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write(run_dir, data)
    return data


def read(run_dir: str) -> Optional[dict[str, Any]]:
    try:
        with open(os.path.join(run_dir, NAME)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def set_status(run_dir: str, status: str) -> None:
    data = read(run_dir)
    if data is not None and data.get("status") != status:
        write(run_dir, {**data, "status": status})


def creator_alive(data: dict[str, Any]) -> bool:
    pid = data.get("creatorPid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    recorded = data.get("creatorStartTime")
    return recorded is None or process_start_time(pid) == recorded


def orphans(run_root: str, owner: str) -> list[tuple[str, dict[str, Any]]]:
    """(run dir, manifest) of this owner's creations that were interrupted: still `creating`
    and their creator process is gone."""
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(run_root), "*", NAME))):
        run_dir = os.path.dirname(path)
        data = read(run_dir)
        if (data and data.get("owner") == owner and data.get("status") == CREATING
                and data.get("prefix") == os.path.basename(run_dir) and not creator_alive(data)):
            found.append((run_dir, data))
    return found
