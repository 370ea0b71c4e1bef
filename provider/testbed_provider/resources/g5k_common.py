"""Helpers shared by the `testbed:g5k:*` controllers: settings, ids, input parsing, errors."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from ..protocol.codec import UNKNOWN
from ..protocol.errors import ResourceFailure
from ..testbeds.base import CheckFailure
from ..testbeds.g5k import jobs
from ..testbeds.g5k.oar import SITE_RE
from ..testbeds.g5k.session import G5kError, Session
from ..testbeds.g5k.settings import G5kSettings
from .base import ProviderContext

ID_RE = re.compile(r"^([a-z][a-z0-9-]*):(\d+)$")

Fail = Callable[[str, str], None]


def settings_of(ctx: ProviderContext) -> G5kSettings:
    """The configured Grid'5000 settings, or a clear error saying how to configure them."""
    if ctx.config.backend != "g5k" or ctx.config.g5k is None:
        raise ResourceFailure(
            "testbed:g5k resources need the Grid'5000 backend: set `testbed:backend` to `g5k` and its API settings "
            f"(`testbed:g5kConfigFile`, or `testbed:g5kUri`/`g5kUsername`/`g5kPassword`); current backend: `{ctx.config.backend}`"
        )
    return ctx.config.g5k


def parse_job_id(value: str, what: str = "job id") -> tuple[str, int]:
    """`site:uid` (also the import id) → (site, uid)."""
    match = ID_RE.match(value or "")
    if not match:
        raise ResourceFailure(f"malformed {what} `{value}`: expected `<site>:<job uid>`, e.g. `rennes:123456`")
    return match.group(1), int(match.group(2))


def check_site(value: Any, prop: str, fail: Fail) -> Optional[str]:
    if value is UNKNOWN:
        return None
    if not isinstance(value, str) or not SITE_RE.match(value):
        fail(prop, "required: a Grid'5000 site name such as `rennes`")
        return None
    return value


def check_int(value: Any, prop: str, fail: Fail, minimum: int = 1, required: bool = True, default: Optional[int] = None) -> Optional[int]:
    if value is UNKNOWN:
        return None
    if value is None:
        if required:
            fail(prop, "required: a whole number")
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        fail(prop, f"must be a whole number (got `{value}`)")
        return None
    if value < minimum:
        fail(prop, f"must be at least {minimum} (got {value})")
        return None
    return value


def check_str(value: Any, prop: str, fail: Fail) -> Optional[str]:
    if value is None or value is UNKNOWN:
        return None
    if not isinstance(value, str) or not value.strip():
        fail(prop, "must be a non-empty string")
        return None
    return value


def unknown_keys(obj: dict[str, Any], allowed: set[str], path: str, fail: Fail, what: str) -> None:
    for key in sorted(set(obj) - allowed):
        fail(f"{path}{key}", f"unknown property `{key}` ({what} accepts {', '.join(sorted(allowed))})")


def failures_list() -> tuple[list[CheckFailure], Fail]:
    failures: list[CheckFailure] = []
    return failures, lambda prop, reason: failures.append(CheckFailure(prop, reason))


async def job_of_step_alive(ctx: ProviderContext, outputs: dict[str, Any]) -> bool:
    """Read of a step on a job's nodes (Deployment, VlanAttachment): is that job still alive?
    When it has ended, its nodes are no longer ours and the step is gone with it."""
    session = Session(settings_of(ctx), ctx.cancelled)
    try:
        job = await jobs.get(session, outputs["site"], int(outputs["jobUid"]))
    except G5kError as err:
        raise ResourceFailure(f"reading job {outputs['site']}:{outputs['jobUid']} failed: {err}") from err
    finally:
        session.close()
    return job is not None and job.get("state") not in jobs.GONE
