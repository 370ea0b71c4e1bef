"""Request tags: the provider's mark on every OAR job it submits.

A provider killed after POSTing a job but before answering the engine leaves a job that no
state records; the next Create of the same resource must find it again. Its name cannot prove
whose it is (a name the user chose may be shared with other stacks), and the API does not echo
the `resources` string, so a changed node count, cluster or vlan would go unseen. Hence a shell
comment appended to the job's command, which OAR runs through a shell and stores as given:

    <command> # pulumi-testbed <owner>.<request>

`owner` is 6 hex of the resource's URN (the same as `naming.job_name`'s suffix), `request` 8 hex
of the canonical request: the resources string with its walltime, the sorted types, the queue,
the project and the user's command, but not the advance-reservation date, which moves between
the retries of a multi-site reservation (that one is compared on its own, see `jobs.mismatch`).
The tag never reaches the user: outputs and recorded inputs keep the user's command, and an
import strips it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NamedTuple, Optional

MARK = "pulumi-testbed"
_TAG = re.compile(r"\s*# " + MARK + r" ([0-9a-f]{6})\.([0-9a-f]{8})\s*$")


class Tag(NamedTuple):
    owner: str  # whose job: 6 hex of the resource's URN
    request: str  # what it asked for: 8 hex of the canonical request


def owner_of(urn: str) -> str:
    """6 hex of the URN (stack, project, type and name): one Pulumi resource, stable across runs."""
    return hashlib.sha256(urn.encode()).hexdigest()[:6]


def request_of(body: dict[str, Any]) -> str:
    """8 hex of what the job holds and runs; the job name and the reservation date are left out."""
    canonical = {
        "resources": body.get("resources") or "",
        "types": sorted(body.get("types") or []),
        "queue": body.get("queue") or "default",
        "project": body.get("project") or "",
        "command": strip_tag(body.get("command") or ""),
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:8]


def tag(command: str, urn: str, body: dict[str, Any]) -> str:
    """`command` with the tag of `urn` and the request `body` (re-tagged if it had one). Left
    as is without a URN, and when empty: a command of nothing but a comment would end the job
    at once, where no command at all lets an advance reservation hold its nodes."""
    bare = strip_tag(command or "")
    if not urn or not bare.strip():
        return command
    return f"{bare} # {MARK} {owner_of(urn)}.{request_of(body)}"


def parse_tag(command: Optional[str]) -> Optional[Tag]:
    """The tag at the end of `command`, None when it carries none (a job not made by us)."""
    match = _TAG.search(command or "")
    return Tag(match.group(1), match.group(2)) if match else None


def strip_tag(command: str) -> str:
    """The user's command: `command` without its trailing tag (unchanged when untagged)."""
    match = _TAG.search(command or "")
    return command[: match.start()] if match else command
