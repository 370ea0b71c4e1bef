"""Kadeploy through python-grid5000: deploy an environment, retrying KO nodes.

Kadeploy never retries by itself (the Grid'5000 wiki says to redeploy failed nodes), so one
`deploy` call submits up to `attempts` deployments, each on the nodes still KO. Deployments
last minutes: polling backs off to `max_poll`. On Cancel the running deployment is cancelled
(DELETE) and the results so far are handed back with the Cancelled error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..base import Progress
from .jobs import MAX_POLL, poll_delays
from .session import Cancelled, G5kError, Session

FINISHED = {"terminated", "error", "canceled"}


@dataclass
class DeployOutcome:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # fqdn → {state, attempts, deployment}
    deployments: list[str] = field(default_factory=list)  # Kadeploy workflow ids, oldest first
    errors: list[str] = field(default_factory=list)  # texts of deployments that ended in `error`

    @property
    def ok(self) -> list[str]:
        return sorted(n for n, r in self.results.items() if r["state"] == "OK")

    @property
    def failed(self) -> list[str]:
        return sorted(n for n, r in self.results.items() if r["state"] != "OK")


class DeployInterrupted(Cancelled):
    def __init__(self, outcome: DeployOutcome) -> None:
        super().__init__("interrupted")
        self.outcome = outcome


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


async def deploy(
    session: Session,
    site: str,
    nodes: list[str],
    environment: str,
    progress: Progress,
    key: Optional[str] = None,
    vlan: Optional[str] = None,
    attempts: int = 3,
    max_poll: float = MAX_POLL,
) -> DeployOutcome:
    outcome = DeployOutcome({n: {"state": "KO", "attempts": 0, "deployment": None} for n in nodes})
    pending = sorted(nodes)
    for attempt in range(1, attempts + 1):
        if not pending:
            break
        body: dict[str, Any] = {"nodes": pending, "environment": environment}
        if key:
            body["key"] = key
        if vlan:
            body["vlan"] = str(vlan)
        await progress(f"deploying {environment} on {len(pending)} node(s) of {site} (attempt {attempt}/{attempts})")
        created = _as_dict(
            await session.call(f"submitting a deployment on {site}", session.site(site).deployments.create, body, retry="unprocessed")
        )
        uid = str(created["uid"])
        outcome.deployments.append(uid)
        try:
            dep = await _wait(session, site, created, progress, max_poll, len(pending))
        except Cancelled:
            await cancel(session, site, uid)
            raise DeployInterrupted(outcome) from None
        result = dep.get("result") or {}
        for node in pending:
            outcome.results[node] = {"state": (result.get(node) or {}).get("state", "KO"), "attempts": attempt, "deployment": uid}
        if dep.get("status") != "terminated":
            outcome.errors.append(f"deployment {uid} ended `{dep.get('status')}`: {' '.join(str(dep.get('output') or '').split())[:300]}")
        pending = [n for n in pending if outcome.results[n]["state"] != "OK"]
    return outcome


async def _wait(session: Session, site: str, dep: dict[str, Any], progress: Progress, max_poll: float, count: int) -> dict[str, Any]:
    uid = str(dep["uid"])
    delays = poll_delays(max_poll)
    manager = session.site(site).deployments
    last = ""
    while dep.get("status") not in FINISHED:
        line = f"deployment {uid} {dep.get('status')} on {count} node(s)"
        if line != last:
            await progress(line)
            last = line
        await session.sleep(next(delays))
        dep = _as_dict(await session.call(f"reading deployment {site}:{uid}", manager.get, uid))
    return dep


async def cancel(session: Session, site: str, uid: str) -> None:
    """DELETE a deployment (202 even when finished); best effort, on a session of its own
    because the caller's stop signal is already set."""
    own = Session(session.settings, attempts=2)
    try:
        await own.call(f"cancelling deployment {site}:{uid}", own.site(site).deployments.delete, uid)
    except G5kError:
        pass
    finally:
        own.close()
