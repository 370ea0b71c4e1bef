"""The per-reservation manifest: who created a run dir, and whether that creation finished.

Written before anything else exists, so an interrupted create (plugin killed mid-reserve) leaves
a trail: a manifest still `creating` whose creator is dead belongs to a create that never
returned, hence to no stack's state, and is released by the create's watchdog, by a later
reserve of the same owner, by the provider's Configure in that stack, or by `testbed gc`.
Whoever releases one first claims it (`claim`), so two never tear it down at once. The
manifest also says where the create ran from (project directory, a hash of the Pulumi backend
it used), which `testbed gc` needs to tell whether the stack still holds the reservation.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

from ...common import pids
from ...common.private_files import write_private

NAME = "manifest.json"
CREATING, READY, FAILED = "creating", "ready", "failed"


def make_run_dir(run_root: str, prefix: str) -> str:
    """Claim `<run_root>/<prefix>` (mode 0700); fails if it already exists."""
    os.makedirs(run_root, mode=0o755, exist_ok=True)
    path = os.path.join(run_root, prefix)
    os.mkdir(path, 0o700)
    os.chmod(path, 0o700)
    return path


def write(run_dir: str, data: dict[str, Any]) -> None:
    """Atomically (re)write the manifest, mode 0600."""
    write_private(os.path.join(run_dir, NAME), json.dumps(data, indent=1))


def backend_hash(environ: Optional[Mapping[str, str]] = None) -> str:
    """Which Pulumi backend a process uses, as far as its environment says (PULUMI_BACKEND_URL,
    PULUMI_HOME; hashed: the URL is nobody else's business). Equal hashes: the same stacks."""
    env = os.environ if environ is None else environ
    text = json.dumps([env.get("PULUMI_BACKEND_URL") or "", env.get("PULUMI_HOME") or ""])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def create(run_dir: str, owner: str, prefix: str) -> dict[str, Any]:
    """The manifest of a create starting now, by this process (the plugin runs in the project's
    directory: the engine starts it there)."""
    pid = os.getpid()
    data = {
        "owner": owner,
        "prefix": prefix,
        "status": CREATING,
        "creatorPid": pid,
        "creatorStartTime": pids.start_time(pid),
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "projectDir": os.getcwd(),
        "backend": backend_hash(),
    }
    write(run_dir, data)
    return data


def update(run_dir: str, **fields: Any) -> None:
    data = read(run_dir)
    if data is not None:
        write(run_dir, {**data, **fields})


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


@contextmanager
def claim(run_dir: str) -> Iterator[Optional[dict[str, Any]]]:
    """Hold the right to release an interrupted create's run dir: its manifest while it is still
    an orphan and nobody else holds the claim, else None. An exclusive flock on the directory
    itself (the manifest file is replaced when rewritten), dropped at exit, or when its holder dies."""
    try:
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        yield None  # already released
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None  # someone is releasing it
            return
        data = read(run_dir)
        orphan = (
            data is not None
            and data.get("status") == CREATING
            and data.get("prefix") == os.path.basename(run_dir)
            and not creator_alive(data)
        )
        yield data if orphan else None
    finally:
        os.close(fd)


def creator_alive(data: dict[str, Any]) -> bool:
    pid = data.get("creatorPid")
    if not isinstance(pid, int) or not pids.alive(pid) or not pids.running(pid):
        return False
    recorded = data.get("creatorStartTime")
    return recorded is None or pids.start_time(pid) == recorded


def all_run_dirs(run_root: str) -> list[tuple[str, dict[str, Any]]]:
    """(run dir, manifest) of every reservation under `run_root` that has a readable manifest."""
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(run_root), "*", NAME))):
        run_dir = os.path.dirname(path)
        data = read(run_dir)
        if data is not None:
            found.append((run_dir, data))
    return found


def interrupted(run_dir: str, data: dict[str, Any]) -> bool:
    """A create that never returned: still `creating`, and its creator process is gone."""
    return data.get("status") == CREATING and data.get("prefix") == os.path.basename(run_dir) and not creator_alive(data)


def orphans(run_root: str, owner: str) -> list[tuple[str, dict[str, Any]]]:
    """(run dir, manifest) of the interrupted creations of one owner (a URN), or of every owner
    whose URN starts with `owner` when it ends with `::` (a stack: `urn:pulumi:<stack>::<project>::`)."""

    def mine(data: dict[str, Any]) -> bool:
        urn = str(data.get("owner") or "")
        return urn.startswith(owner) if owner.endswith("::") else urn == owner

    return [(d, m) for d, m in all_run_dirs(run_root) if mine(m) and interrupted(d, m)]
