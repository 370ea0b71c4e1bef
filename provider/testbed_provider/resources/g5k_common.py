"""Helpers shared by the `testbed:g5k:*` controllers: settings, ids, declared defaults, job liveness."""

from __future__ import annotations

import enum
import re
from typing import Any

from ..protocol.errors import ResourceFailure
from ..testbeds.g5k import jobs
from ..testbeds.g5k.session import G5kError, Session
from ..testbeds.g5k.settings import G5kSettings
from ..typed.model import default_of
from .base import ProviderContext

ID_RE = re.compile(r"^([a-z][a-z0-9-]*):(\d+)$")


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


def default(cls: type, py_name: str) -> Any:
    """A field's declared default as inputs spell it (an enum member's value)."""
    value = default_of(cls, py_name)
    return value.value if isinstance(value, enum.Enum) else value


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
