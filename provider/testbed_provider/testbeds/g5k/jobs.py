"""OAR jobs through python-grid5000: submit, wait until running, inspect, extend, delete.

Polling backs off (1 s, 2 s, 3 s, 5 s, … up to `max_poll`) and sleeps until shortly before a
known scheduled start instead of hammering the API; every wait watches the session's stop
event (Cancel or customTimeouts) and reports progress lines (state, predicted start).
Callers tag the command of what they submit (see `tagging`): `adopt` finds the job of an
interrupted create again by its name and owner tag, and `mismatch` tells whether it still
holds what is asked. The API never returns a job's `resources` string: `holding` reads what a
job holds instead, and `requests_for` lists the requests that would hold just that.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..base import Progress
from . import naming, tagging
from .oar import VLAN_ID_TYPES, NodeGroup, ResourceRequest, VlanRequest, epoch_iso, format_walltime, resources_string
from .session import Cancelled, G5kError, Session

RUNNING = "running"
# States after which a job never runs again: it is gone for Pulumi.
GONE = {"terminated", "error"}
ALREADY_KILLED = "This job was already killed"
POLL_STEPS = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)
QUEUE_EVERY = 5  # polls between two looks at the queue position
ADOPT_LOOKS, ADOPT_INTERVAL = 3, 2.0  # after an unanswered POST, look for the job this often
# Longest wait between two polls; tests against a fast-clock emulator shorten it.
MAX_POLL = float(os.environ.get("PULUMI_TESTBED_G5K_MAX_POLL", "30"))


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def poll_delays(max_poll: float = MAX_POLL):
    """The waits between two GETs of a job: a short ramp, then `max_poll` forever."""
    for step in POLL_STEPS:
        yield min(step, max_poll)
    while True:
        yield max_poll


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """The facts a resource exposes, from a job object of the API."""
    by_type = job.get("resources_by_type") or {}
    started = job.get("started_at") or 0
    walltime = int(job.get("walltime") or 0)
    scheduled = job.get("scheduled_at") or 0
    start = started or scheduled
    return {
        "uid": int(job["uid"]),
        "state": job.get("state", "unknown"),
        "assignedNodes": list(job.get("assigned_nodes") or []),
        "vlans": [str(v) for v in by_type.get("vlans") or []],
        "subnets": list(by_type.get("subnets") or []),
        "scheduledAt": epoch_iso(scheduled),
        "startedAt": epoch_iso(started),
        "endsAt": epoch_iso(start + walltime) if start and walltime else None,
        "walltimeSeconds": walltime,
    }


async def submit(session: Session, site: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the job; on an ambiguous failure (no answer, 502/504) adopt the job if it was created
    (found by name and, when the command is tagged, by our owner tag: the name may be shared)."""
    started = time.time()
    manager = session.site(site).jobs
    try:
        return _as_dict(await session.call(f"submitting the job on {site}", manager.create, body, retry="unprocessed"))
    except G5kError as err:
        if err.status not in (None, 502, 504) or not body.get("name"):
            raise
        mark = tagging.parse_tag(body.get("command"))
        # The POST may still be processed after our timeout: look a few times before giving up.
        for attempt in range(ADOPT_LOOKS):
            found = await find_alive(session, site, body["name"], since=started - 5, owner=mark.owner if mark else "")
            if found is not None:
                return found
            if attempt + 1 < ADOPT_LOOKS:
                await session.sleep(ADOPT_INTERVAL)
        raise


async def find_alive(session: Session, site: str, name: str, since: float = 0, owner: str = "") -> Optional[dict[str, Any]]:
    """Our newest job called `name` still queued or running (EnOSlib's reuse query); with
    `owner`, only one whose command carries that owner's tag (another stack's job may share
    the name, an untagged job is not ours). With an owner and a known user, every alive job of
    the user is looked at, whatever its name: the resource's `name` may have changed since its
    interrupted create (`mismatch` then tells the caller to delete it)."""
    query: dict[str, Any] = {"name": name, "state": "waiting,launching,running"}
    if session.settings.username:
        query["user"] = session.settings.username
        if owner:
            del query["name"]
    what = f"listing the alive jobs of {query['user']}" if "name" not in query else f"listing jobs named {name}"
    jobs = await session.call(f"{what} on {site}", session.site(site).jobs.list, **query)
    for job in jobs:
        data = _as_dict(job)
        if (data.get("submitted_at") or 0) < since or (owner and "command" in data and not _owned(data, owner)):
            continue
        found = await get(session, site, int(data["uid"]))  # the full job (and its command if the list lacks it)
        if found is not None and (not owner or _owned(found, owner)):
            return found
    return None


def _owned(job: dict[str, Any], owner: str) -> bool:
    mark = tagging.parse_tag(job.get("command"))
    return mark is not None and mark.owner == owner


def mismatch(job: dict[str, Any], body: dict[str, Any]) -> Optional[str]:
    """Why an alive job differs from the request `body` (None: it matches). The API does not
    return the submitted resources string: compare what it does return (walltime, queue, types,
    project, command without its tag, advance-reservation start), then the request hash of the
    tags, which covers the resources (node count, cluster, vlan, subnet, properties)."""
    from .oar import oar_date, parse_date, walltime_of_raw

    wanted = walltime_of_raw(body.get("resources") or "")
    if wanted is not None and int(job.get("walltime") or 0) != wanted:
        return f"walltime {format_walltime(int(job.get('walltime') or 0))}, not {format_walltime(wanted)}"
    for key, default in (("queue", "default"), ("project", None), ("command", None)):
        want, have = body.get(key, default), job.get(key, default)
        if key == "command":
            want, have = want and tagging.strip_tag(want), have and tagging.strip_tag(have)
        if want is not None and have is not None and want != have:
            return f"{key} `{have}`, not `{want}`"
    if body.get("name") and job.get("name") is not None and job["name"] != body["name"]:
        return f"name `{job.get('name')}`, not `{body['name']}`"
    if sorted(body.get("types") or []) != sorted(job.get("types") or []):
        return f"types {sorted(job.get('types') or [])}, not {sorted(body.get('types') or [])}"
    have_tag, want_tag = tagging.parse_tag(job.get("command")), tagging.parse_tag(body.get("command"))
    if want_tag is not None and (have_tag is None or have_tag.request != want_tag.request):
        return f"the request changed: it holds other resources than `{body.get('resources')}`"
    if body.get("reservation") and job.get("state") == "waiting" and job.get("scheduled_at"):
        start = int(parse_date(body["reservation"]).timestamp())
        if int(job["scheduled_at"]) != start:
            return f"start {epoch_iso(job['scheduled_at'])}, not {oar_date(parse_date(body['reservation']))}"
    return None


async def adopt(session: Session, site: str, body: dict[str, Any], progress: Progress) -> Optional[dict[str, Any]]:
    """Before submitting `body` (its command tagged, see `tagging`), our alive job of that name
    whose command carries the same owner tag, left by an interrupted create (the provider was
    killed after the POST): adopted if it matches the request, else deleted (and waited for) so
    the caller submits anew. None when nothing is to be adopted; an untagged request adopts nothing."""
    mark = tagging.parse_tag(body.get("command"))
    if mark is None or not body.get("name"):
        return None
    found = await find_alive(session, site, body["name"], owner=mark.owner)
    if found is None:
        return None
    uid = int(found["uid"])
    why = mismatch(found, body)
    if why is not None:
        await progress(f"job {site}:{uid} left by an interrupted run no longer matches the request ({why}): deleting it")
        await release(session, site, uid, progress)
        return None
    await progress(f"adopting job {site}:{uid} left by an interrupted run")
    return found


async def get(session: Session, site: str, uid: int) -> Optional[dict[str, Any]]:
    """The job, or None when the API does not know it (404)."""
    try:
        return _as_dict(await session.call(f"reading job {site}:{uid}", session.site(site).jobs.get, uid))
    except G5kError as err:
        if err.status == 404:
            return None
        raise


async def wait_running(
    session: Session, site: str, job: dict[str, Any], progress: Progress, until: str = RUNNING, max_poll: float = MAX_POLL
) -> dict[str, Any]:
    """Poll until the job runs (or, with until="scheduled", until OAR has placed it).

    Raises G5kError if the job ends (error/terminated) or disappears, Cancelled when stopped."""
    uid = int(job["uid"])
    delays = poll_delays(max_poll)
    last_line = ""
    polls, ahead = 0, None
    while True:
        state = job.get("state")
        if state == RUNNING or (until == "scheduled" and job.get("assigned_nodes") and state not in GONE):
            return job
        if state in GONE:
            reason = job.get("message") or ""
            raise G5kError(f"job {site}:{uid} ended in state `{state}` before running" + (f": {reason}" if reason else ""))
        line = _waiting_line(site, job)
        if state == "waiting" and polls % QUEUE_EVERY == 0:  # where we stand, now and then (one more call)
            position = await queue_position(session, site, job)
            if position is not None:
                ahead = position
        if state == "waiting" and ahead is not None:
            line += f", {ahead} job(s) ahead in the {job.get('queue', 'default')} queue"
        polls += 1
        if line != last_line:
            await progress(line)
            last_line = line
        delay = next(delays)
        scheduled = job.get("scheduled_at") or 0
        if scheduled and state == "waiting":  # no need to look before the predicted start
            delay = max(delay, min(max_poll, scheduled - time.time()))
        await session.sleep(delay)
        fresh = await get(session, site, uid)
        if fresh is None:
            raise G5kError(f"job {site}:{uid} disappeared from the API while waiting for it")
        job = fresh


async def queue_position(session: Session, site: str, job: dict[str, Any]) -> Optional[int]:
    """How many waiting jobs of the same queue were submitted before this one (None: unknown)."""
    try:
        waiting = await session.call(
            f"listing waiting jobs on {site}", session.site(site).jobs.list, state="waiting", queue=job.get("queue", "default"), limit=500
        )
    except G5kError:
        return None
    return sum(1 for other in waiting if int(_as_dict(other).get("uid", 0)) < int(job["uid"]))


def _waiting_line(site: str, job: dict[str, Any]) -> str:
    uid, state = job["uid"], job.get("state", "?")
    scheduled = job.get("scheduled_at") or 0
    if scheduled:
        wait = int(scheduled - time.time())
        when = f"predicted start {epoch_iso(scheduled)}" + (f" (in {wait} s)" if wait > 0 else "")
        return f"job {site}:{uid} {state}, {when}"
    return f"job {site}:{uid} {state}, no start predicted yet"


async def delete(session: Session, site: str, uid: int) -> str:
    """DELETE the job; `already killed` and 404 count as done. Returns what happened."""
    try:
        await session.call(f"deleting job {site}:{uid}", session.site(site).jobs.delete, uid)
    except G5kError as err:
        if err.status == 404:
            return "unknown to the API"
        if err.status == 400 and ALREADY_KILLED in err.reason:
            return "already killed"
        raise
    return "deleted"


async def wait_released(session: Session, site: str, uid: int, progress: Progress, max_poll: float = min(5.0, MAX_POLL)) -> Optional[str]:
    """Poll (1 s, 2 s, … `max_poll`) until the job is terminated/error or unknown; its final state."""
    delays = poll_delays(max_poll)
    while True:
        job = await get(session, site, uid)
        if job is None:
            return None
        if job.get("state") in GONE:
            return job["state"]
        await progress(f"job {site}:{uid} {job.get('state')}, waiting for OAR to release it")
        await session.sleep(next(delays))


async def release(session: Session, site: str, uid: int, progress: Progress) -> str:
    """Delete and wait until the nodes are free again."""
    outcome = await delete(session, site, uid)
    final = await wait_released(session, site, uid, progress)
    return f"{outcome}, final state {final or 'unknown'}"


async def change_walltime(session: Session, site: str, uid: int, delta_seconds: int) -> dict[str, Any]:
    """POST /jobs/{uid}/walltime {"walltime": "+H:MM:SS"} (or "-..."); returns the API's answer
    (`walltime`, `granted`, `pending`, ...)."""
    from grid5000.objects import Job

    job = Job(session.site(site).jobs, {"uid": uid})
    sign = "+" if delta_seconds > 0 else "-"
    answer = await session.call(
        f"changing the walltime of job {site}:{uid}",
        job.walltime_change.create,
        {"walltime": sign + format_walltime(abs(delta_seconds))},
        retry=False,
    )
    return _as_dict(answer)


# The user's filter in a job's `properties`, which Grid'5000 ANDs with its maintenance clause.
_MAINTENANCE = re.compile(r"^\s*(?:\((?P<user>.*)\)\s+AND\s+)?maintenance\s*=\s*'NO'\s*$", re.S | re.I)
_SUBNET_PREFIXES = {22: "slash_22", 18: "slash_18", 16: "slash_16", 14: "slash_14"}
MAX_ORDERED_CLUSTERS = 4  # beyond, only the sorted order of clusters is tried (k! orders)


@dataclass(frozen=True)
class Holding:
    """What an OAR job holds, as the API shows it: nodes per cluster, vlans, subnets."""

    nodes: dict[str, tuple[str, ...]]  # cluster -> node FQDNs, in node order
    vlans: tuple[str, ...]  # the vlans' types (`kavlan`, ...), one per vlan; "" for an id of no known type
    subnets: tuple[int, ...]  # the subnets' prefix lengths, one per subnet
    properties: Optional[str]  # the user's job-level filter, without Grid'5000's maintenance clause


def holding(job: dict[str, Any]) -> Holding:
    by_type = job.get("resources_by_type") or {}
    nodes: dict[str, list[str]] = {}
    for fqdn in sorted(job.get("assigned_nodes") or [], key=naming.node_order):
        nodes.setdefault(naming.cluster_of(fqdn), []).append(fqdn)
    vlans = tuple(VLAN_ID_TYPES.get(int(v), "") if str(v).isdigit() else "" for v in by_type.get("vlans") or [])
    subnets = tuple(ipaddress.ip_network(str(c), strict=False).prefixlen for c in by_type.get("subnets") or [])
    text = (job.get("properties") or "").strip()
    match = _MAINTENANCE.match(text)
    properties = (match.group("user") or None) if match else (text or None)
    return Holding({c: tuple(n) for c, n in nodes.items()}, vlans, subnets, properties)


def requests_for(held: Holding) -> list[ResourceRequest]:
    """Requests that OAR would answer with exactly what `held` holds, the most natural first
    (one group per cluster, clusters sorted, every group naming its cluster); then the other
    spellings a program may have used: clusters in another order or not named, one group for
    all, named hosts, a big subnet that the API lists as /22s. Empty when the job holds no
    node yet, or a vlan of no known type."""
    if not held.nodes or "" in held.vlans:
        return []
    props = held.properties
    clusters = sorted(held.nodes)
    node_options: list[list[NodeGroup]] = []
    orders = itertools.permutations(clusters) if len(clusters) <= MAX_ORDERED_CLUSTERS else iter([tuple(clusters)])
    for order in orders:  # the first order is the sorted one, its first variant names every cluster
        for named in itertools.product((True, False), repeat=len(order)):
            node_options.append([NodeGroup(len(held.nodes[c]), c if keep else None, props) for c, keep in zip(order, named)])
    every = tuple(n for c in clusters for n in held.nodes[c])
    node_options.append([NodeGroup(len(every), None, props)])
    node_options.append([NodeGroup(len(held.nodes[c]), c, props, held.nodes[c]) for c in clusters])
    node_options.append([NodeGroup(len(held.nodes[c]), None, props, held.nodes[c]) for c in clusters])
    node_options.append([NodeGroup(len(every), None, props, every)])

    counts: dict[str, int] = {}
    for vtype in held.vlans:
        counts[vtype] = counts.get(vtype, 0) + 1
    vlans = [VlanRequest(t, n) for t, n in sorted(counts.items())]
    if any(p not in _SUBNET_PREFIXES for p in held.subnets):
        return []  # a subnet of a size the request syntax has no name for
    subnet_options = [{_SUBNET_PREFIXES[p]: held.subnets.count(p) for p in sorted(set(held.subnets), reverse=True)}]
    if held.subnets and set(held.subnets) == {22}:  # a /18, /16 or /14 may be listed as its /22s
        for prefix in (18, 16, 14):
            per = 2 ** (22 - prefix)
            if len(held.subnets) % per == 0:
                subnet_options.append({_SUBNET_PREFIXES[prefix]: len(held.subnets) // per})
    out: list[ResourceRequest] = []
    seen: set[str] = set()
    for groups, subnets in itertools.product(node_options, subnet_options):
        request = ResourceRequest(nodes=groups, vlan=vlans[0] if vlans else None, subnets=subnets, extra_vlans=tuple(vlans[1:]))
        text = resources_string(request, 1)
        if text not in seen:
            seen.add(text)
            out.append(request)
    return out


__all__ = [
    "Cancelled",
    "Holding",
    "holding",
    "requests_for",
    "G5kError",
    "GONE",
    "RUNNING",
    "adopt",
    "delete",
    "change_walltime",
    "find_alive",
    "get",
    "mismatch",
    "release",
    "submit",
    "summary",
    "wait_released",
    "wait_running",
]
