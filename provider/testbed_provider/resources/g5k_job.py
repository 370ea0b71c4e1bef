"""`testbed:g5k:Job`: one OAR job on one Grid'5000 site, submitted and waited for.

Inputs describe the request in typed form (`nodes`, `vlan`, `subnet`, `walltime`) or as an
expert's OAR string (`rawResources`); the exact `resources` string sent to OAR is the
`oarRequest` output, known already in preview. Create waits until the job runs (or, with
`waitUntil: scheduled`, until OAR has placed it) with live progress. A walltime change is an
in-place update through `/jobs/{uid}/walltime` (OAR >= 2.5.8 extends and shortens; an extension
the scheduler cannot grant yet stays pending and is reported); anything else replaces the job
(the old one is deleted first: the same nodes cannot be held twice). The id is `<site>:<uid>`,
which is also the import id. A provider killed mid-Create leaks no job: the submitted command
carries a tag of the URN and of the request (see `tagging`; outputs and imports show the user's
command), by which the next Create adopts the job, or deletes it if the request changed.

Import reads back inputs that declare the job (the API never returns its `resources` string):
the request is rebuilt from what the job holds (`jobs.requests_for`), and for a job this provider
submitted, the spelling whose hash its tag carries is chosen (cluster named or not, group order…).
Diff compares what the inputs mean (`effective`), not how they are written, so a program that
spells the same job with its defaults, `1:00` for `1:00:00` or typed nodes for the same raw
string changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import UNKNOWN, has_unknowns
from ..protocol.engine_log import WARNING
from ..protocol.errors import PartialFailure, ResourceFailure
from ..testbeds.g5k import forecast as forecasting
from ..testbeds.g5k import jobs, naming, tagging
from ..testbeds.g5k.oar import (
    NodeGroup,
    OarError,
    ResourceRequest,
    VlanRequest,
    check_raw_resources,
    epoch_iso,
    format_walltime,
    oar_date,
    parse_date,
    parse_walltime,
    resources_string,
    walltime_of_raw,
)
from ..testbeds.g5k.session import Cancelled, G5kError, Session
from ..testbeds.g5k.validation import CHECK_TIMEOUT, Reference, check_placement, with_timeout
from ..typed.check import check_inputs, with_defaults
from ..typed.model import input_names
from .base import CheckResult, ReadResult, ResourceController
from .diff import DiffResult, Kind, diff_inputs
from .g5k_common import default, parse_job_id, settings_of
from .g5k_job_schema import JOB, JobArgs, SubnetRequest
from .g5k_job_schema import VlanRequest as VlanRequestArgs

DEFAULT_PROJECT = "default"  # what OAR records for a job submitted without a project
INPUT_KEYS = input_names(JobArgs)
COMPUTED = ("uid", "state", "assignedNodes", "vlans", "subnets", "scheduledAt", "startedAt", "endsAt", "walltimeSeconds")
# Changing anything else needs a new job.
IN_PLACE = {"walltime", "waitUntil"}
# The parts of a job (see `effective`) and the inputs that say them; `rawResources` may end with the walltime.
PARTS = {
    "site": ("site",),
    "request": ("nodes", "vlan", "subnet", "rawResources"),
    "walltime": ("walltime", "rawResources"),
    "command": ("command",),
    "queue": ("queue",),
    "project": ("project",),
    "name": ("name",),
    "types": ("types",),
    "reservation": ("reservation",),
    "waitUntil": ("waitUntil",),
}
_WALLTIME_SUFFIX = re.compile(r",\s*walltime=[0-9:]+\s*$")
_RESERVATION_JOB = re.compile(r"(^|,)J=R(,|\s|$)")  # OAR's job message: `…,J=R,…` for an advance reservation

Fail = Callable[[str, str], None]


@dataclass
class JobSpec:
    site: str
    resources: str  # the exact OAR request, walltime included
    walltime: int
    body: dict[str, Any]
    request: Optional[ResourceRequest] = None  # the typed request (None for `rawResources`)


def validate(inputs: dict[str, Any]) -> tuple[Optional[JobSpec], list[CheckFailure]]:
    """The definition's Check, then the rules no type says; a JobSpec when everything is known
    and valid. A value the definition refuses is not judged again by the rules below."""
    failures = check_inputs(JobArgs, inputs, JOB.label).failures
    refused = {f.property for f in failures}
    fail: Fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
    site = inputs.get("site")

    given = inputs.get("walltime")
    walltime: Optional[int] = None
    if given is not UNKNOWN and "walltime" not in refused:
        try:
            walltime = parse_walltime(default(JobArgs, "walltime") if given is None else given)
        except OarError as err:  # zero, or beyond OAR's limit
            fail("walltime", str(err))

    raw = inputs.get("rawResources")
    typed = [k for k in ("nodes", "vlan", "subnet") if inputs.get(k) is not None]
    request: Optional[ResourceRequest] = None
    resources: Optional[str] = None
    if raw is not None:
        if typed:
            fail("rawResources", f"give either `rawResources` or the typed request ({', '.join(typed)}), not both")
        elif raw is not UNKNOWN and "rawResources" not in refused:
            try:
                raw = check_raw_resources(raw)
                in_raw = walltime_of_raw(raw)
                if in_raw is not None and given is not None:
                    fail("walltime", "the walltime is already given in `rawResources` (`,walltime=…`); give it once")
                elif in_raw is not None:
                    walltime = in_raw
                    resources = raw
                elif walltime is not None:
                    resources = f"{raw},walltime={format_walltime(walltime)}"
            except OarError as err:
                fail(err.property, str(err))
    else:
        request = _typed_request(inputs, fail)
        if not failures and request is not None and walltime is not None and not has_unknowns([inputs.get(k) for k in typed]):
            resources = resources_string(request, walltime)

    queue = inputs.get("queue", default(JobArgs, "queue"))
    reservation = inputs.get("reservation")
    start = None
    if reservation is not None and reservation is not UNKNOWN:
        if "reservation" not in refused:
            try:
                start = parse_date(reservation)
            except OarError as err:
                fail("reservation", str(err))
        if queue == "besteffort":
            fail("queue", "a besteffort job cannot be an advance reservation (OAR admission rule)")

    if failures or not isinstance(site, str) or resources is None or has_unknowns(inputs):
        return None, failures
    body: dict[str, Any] = {"resources": resources, "command": inputs.get("command", default(JobArgs, "command")), "queue": queue}
    for key in ("name", "project"):
        if inputs.get(key):
            body[key] = inputs[key]
    if inputs.get("types"):
        body["types"] = list(inputs["types"])
    if start is not None:
        body["reservation"] = oar_date(start)
    return JobSpec(site=site, resources=resources, walltime=walltime or 0, body=body, request=request), failures


def _typed_request(inputs: dict[str, Any], fail: Fail) -> Optional[ResourceRequest]:
    """The typed request of inputs the definition checked: a node group's count against its
    hosts, short host names completed on the site. None when `nodes` is missing or unknown."""
    nodes = inputs.get("nodes")
    if nodes is None:
        fail("nodes", "required: at least one node group `{count, cluster?, properties?, hosts?}` (or give `rawResources`)")
        return None
    if not isinstance(nodes, list):
        return None  # unknown at preview (or refused by the definition)
    groups: list[NodeGroup] = []
    for i, group in enumerate(nodes):
        if not isinstance(group, dict):
            continue
        count, hosts = group.get("count"), group.get("hosts") or []
        if has_unknowns(hosts) or not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            continue  # known later, or refused
        if count is None and not hosts:
            fail(f"nodes[{i}].count", "required: how many nodes (or name them in `hosts`)")
        elif count is None:
            count = len(hosts)
        elif isinstance(count, int) and hosts and count != len(hosts):
            fail(f"nodes[{i}].count", f"{count} nodes requested but {len(hosts)} named in hosts")
        if isinstance(count, int) and not isinstance(count, bool):
            groups.append(
                NodeGroup(
                    count=count,
                    cluster=group.get("cluster"),
                    properties=group.get("properties"),
                    hosts=tuple(h if "." in h else f"{h}.{inputs.get('site')}.grid5000.fr" for h in hosts),
                )
            )
    vlan = None
    asked_vlan = inputs.get("vlan")
    if isinstance(asked_vlan, dict):
        vlan = VlanRequest(
            type=asked_vlan.get("type", default(VlanRequestArgs, "type")), count=asked_vlan.get("count", default(VlanRequestArgs, "count"))
        )
    subnets: dict[str, int] = {}
    asked_subnet = inputs.get("subnet")
    if isinstance(asked_subnet, dict):
        size = asked_subnet.get("size", default(SubnetRequest, "size"))
        if isinstance(size, str):
            subnets[size] = asked_subnet.get("count", default(SubnetRequest, "count"))
    return ResourceRequest(nodes=groups, vlan=vlan, subnets=subnets)


def outputs_of(inputs: dict[str, Any], spec: Optional[JobSpec], job: dict[str, Any]) -> dict[str, Any]:
    facts = jobs.summary(job)
    return {
        **{k: v for k, v in inputs.items() if k in INPUT_KEYS},
        "oarRequest": spec.resources if spec else inputs.get("oarRequest", ""),
        **{k: facts[k] for k in COMPUTED},
    }


def effective(inputs: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The job that checked inputs ask for, part by part (`PARTS`), defaults filled in and spellings
    made one: `1:00` is `1:00:00`, a vlan `{type: kavlan}` is `{type: kavlan, count: 1}`, typed nodes
    are the OAR string they make, no project is OAR's `default`. None when an input is unknown or
    invalid (then the inputs are compared as written)."""
    if has_unknowns(inputs):
        return None
    spec, _ = validate(inputs)
    if spec is None:
        return None
    body = spec.body
    types = sorted(body.get("types") or [])
    return {
        "site": spec.site,
        "request": _WALLTIME_SUFFIX.sub("", spec.resources),
        "walltime": spec.walltime,
        "command": body["command"],
        "queue": "besteffort" if "besteffort" in types else body["queue"],  # OAR moves besteffort jobs there
        "project": body.get("project") or DEFAULT_PROJECT,
        "name": body.get("name"),
        "types": types,
        "reservation": body.get("reservation"),
        "waitUntil": inputs.get("waitUntil", default(JobArgs, "wait_until")),
    }


class Job(ResourceController):
    token = "testbed:g5k:Job"

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs = {k: v for k, v in news.items() if v is not None}
        # The OAR job name: the user's, else the one recorded (older stacks used the bare resource
        # name; keeping it avoids a replacement), else `<name>-<6 hex of the URN>`, distinct
        # between stacks (an interrupted create's job is found by name and command tag, see create).
        # A job imported without a name keeps none: naming it would replace it.
        if "name" not in inputs and (olds.get("name") or not olds.get("site")):
            inputs["name"] = olds.get("name") or (naming.job_name(name, urn) if urn else name)
        spec, failures = validate(inputs)
        if spec is not None and self.ctx.config.backend == "g5k" and self.ctx.config.g5k is not None:
            failures += await with_timeout(self._check_reference(spec))
        return CheckResult(inputs, failures)

    async def _check_reference(self, spec: JobSpec) -> list[CheckFailure]:
        assert self.ctx.config.g5k is not None  # check() asks only on a configured g5k backend
        ref = Reference(self.ctx.config.g5k)
        try:
            wanted: dict[str, int] = {}
            props: dict[str, str] = {}
            for i, group in enumerate(spec.request.nodes if spec.request else []):  # in the order of `nodes`
                if group.cluster:
                    wanted[group.cluster] = wanted.get(group.cluster, 0) + group.count
                    props.setdefault(group.cluster, f"nodes[{i}].cluster")
            return await check_placement(ref, spec.site, wanted, "site", props)
        finally:
            ref.close()

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old = old_inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        before, after = effective(old), effective(news)
        if before is None or after is None:  # unknown (preview) or invalid: the inputs as written, defaults filled
            old, new = with_defaults(JobArgs, old), with_defaults(JobArgs, news)
            result = diff_inputs(old, new, replace_keys=(set(old) | set(new)) - IN_PLACE)
        else:  # what changed in the job, shown at the inputs that say it
            changed = [part for part in PARTS if before[part] != after[part]]
            keys = {k for part in changed for k in PARTS[part]}
            replacing = {k for part in changed if part not in IN_PLACE for k in PARTS[part]}
            result = diff_inputs(
                {k: v for k, v in old.items() if k in keys}, {k: v for k, v in news.items() if k in keys}, replace_keys=replacing
            )
            for part in changed:
                if not set(result.changed_keys) & set(PARTS[part]):  # the same words, another meaning
                    result.detailed[PARTS[part][0]] = Kind.UPDATE if part in IN_PLACE else Kind.UPDATE_REPLACE
        result.delete_before_replace = True
        return result

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        spec, failures = validate(inputs)
        if preview:
            planned = {**inputs, "oarRequest": spec.resources if spec else UNKNOWN, **{k: UNKNOWN for k in COMPUTED}}
            start = await self._forecast(urn, spec) if spec is not None else None
            if start is not None:
                planned["scheduledAt"] = epoch_iso(int(start))  # the forecast; the job's own once submitted
            return "", planned
        if spec is None:
            raise ResourceFailure("; ".join(f"{f.property}: {f.reason}" for f in failures) or "job inputs are not complete")
        settings = settings_of(self.ctx)
        progress = self.ctx.log.status(urn)
        started = time.monotonic()
        async with deadline(self.ctx.cancelled, timeout) as limit:
            session = Session(settings, limit.stop)
            try:
                if limit.stop.is_set():
                    raise ResourceFailure(limit.explain("cancelled before the job was submitted"))
                # Create runs because the engine holds no state for this resource: an alive job of
                # this name whose command carries this URN's tag is the orphan of its interrupted create.
                body = {**spec.body, "command": tagging.tag(spec.body["command"], urn, spec.body)}
                try:
                    job = await jobs.adopt(session, spec.site, body, progress)
                except G5kError as err:
                    raise ResourceFailure(
                        f"looking for a job `{body['name']}` left by an interrupted run "
                        f"on {spec.site} failed (nothing was submitted): {err}"
                    ) from err
                try:
                    if job is None:
                        await progress(f"submitting `{spec.resources}` on {spec.site}")
                        job = await jobs.submit(session, spec.site, body)
                except G5kError as err:
                    reason = f"(HTTP {err.status}): {err.reason}" if err.status and err.status != 401 else f": {err}"
                    raise ResourceFailure(f"OAR refused the job on {spec.site} {reason}") from err
                rid = f"{spec.site}:{job['uid']}"
                job = await self._wait(session, rid, spec, inputs, job, progress, limit)
            finally:
                session.close()
        await self.ctx.log.info(
            urn,
            f"job {rid} {job['state']} on {len(job.get('assigned_nodes') or [])} node(s) "
            f"after {time.monotonic() - started:.1f} s ({sum(session.calls.values())} API calls)",
        )
        return rid, outputs_of(inputs, spec, job)

    async def _forecast(self, urn: str, spec: JobSpec) -> Optional[float]:
        """Preview: when the job could start, from the site's status (see forecast.py), told in
        the CLI; a warning when it cannot be placed or an asked start is not free."""
        settings = self.ctx.config.g5k
        if settings is None or spec.request is None:
            return None  # a raw OAR request is not parsed here: OAR is its judge
        body = spec.body
        asked = parse_date(body["reservation"]).timestamp() if body.get("reservation") else None
        ref = Reference(settings)
        try:
            clusters = await with_timeout(ref.clusters(spec.site), CHECK_TIMEOUT)
        finally:
            ref.close()
        demand = forecasting.demand_of(
            spec.site,
            spec.request,
            spec.walltime,
            body["queue"],
            asked,
            forecasting.eligible_clusters(clusters or None, body["queue"], body.get("types") or []),
        )
        found = await forecasting.forecast(settings, [demand])
        if found is None:
            return None
        start, (one,) = found
        text = forecasting.describe(one, f"job `{spec.resources}`")
        if asked is not None and start is not None and start > asked:
            await self.ctx.log.log(
                WARNING,
                f"the asked start {forecasting.paris(asked)} (Paris) is not free, OAR would refuse it (`could run at`): {text}",
                urn=urn,
            )
        elif start is None:
            await self.ctx.log.log(WARNING, text, urn=urn)
        else:
            await self.ctx.log.info(urn, text)
        return start

    async def _wait(
        self, session: Session, rid: str, spec: JobSpec, inputs: dict[str, Any], job: dict[str, Any], progress, limit
    ) -> dict[str, Any]:
        """Wait for the job; on interruption keep it in state, on failure delete it."""
        until = inputs.get("waitUntil", default(JobArgs, "wait_until"))
        try:
            return await jobs.wait_running(session, spec.site, job, progress, until=until)
        except Cancelled:
            latest = await self._latest(session, spec.site, job)
            raise PartialFailure(
                limit.explain(
                    f"interrupted while job {rid} was `{latest.get('state')}`; it is kept in the stack "
                    "(`pulumi up` waits for it again, `pulumi destroy` deletes it)"
                ),
                rid,
                outputs_of(inputs, spec, latest),
            ) from None
        except G5kError as err:
            latest = await self._latest(session, spec.site, job)
            if latest.get("state") in jobs.GONE:
                raise ResourceFailure(f"{err}; nothing is kept") from err
            # The API failed while the job lives: delete it rather than leak it; keep it if that fails too.
            try:
                await jobs.release(session, spec.site, int(job["uid"]), progress)
            except (G5kError, Cancelled):
                raise PartialFailure(
                    f"waiting for job {rid} failed ({err}) and deleting it failed too; it is kept in the stack",
                    rid,
                    outputs_of(inputs, spec, latest),
                ) from err
            raise ResourceFailure(f"waiting for job {rid} failed, the job was deleted: {err}") from err

    async def _latest(self, session: Session, site: str, job: dict[str, Any]) -> dict[str, Any]:
        """The job's newest view, outside the (possibly expired) stop signal."""
        probe = Session(session.settings, attempts=2)
        try:
            return await jobs.get(probe, site, int(job["uid"])) or job
        except G5kError:
            return job
        finally:
            probe.close()

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        site, uid = parse_job_id(id)
        session = Session(settings_of(self.ctx), self.ctx.cancelled)
        try:
            job = await jobs.get(session, site, uid)
        except (G5kError, Cancelled) as err:
            raise ResourceFailure(f"reading job {id} failed: {err}") from err
        finally:
            session.close()
        if job is None or job.get("state") in jobs.GONE:
            return None  # ended (walltime, oardel, crash): refresh drops it, the next up resubmits
        if not outputs:  # import: inputs from what the API knows
            recorded, warning = _imported_inputs(site, job)
            if warning:
                await self.ctx.log.log(WARNING, warning, urn=urn)
            spec, _ = validate(recorded)
            return ReadResult(id, outputs_of(recorded, spec, job), recorded)
        recorded = inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        return ReadResult(id, {**outputs_of(recorded, None, job), "oarRequest": outputs.get("oarRequest", "")}, recorded)

    async def update(
        self,
        id: str,
        urn: str,
        outputs: dict[str, Any],
        old_inputs: dict[str, Any],
        news: dict[str, Any],
        preview: bool,
        timeout: float = 0,
    ) -> dict[str, Any]:
        spec, failures = validate(news)
        if preview:
            return {**outputs, **news, "oarRequest": spec.resources if spec else UNKNOWN, "endsAt": UNKNOWN, "walltimeSeconds": UNKNOWN}
        if spec is None:
            raise ResourceFailure("; ".join(f"{f.property}: {f.reason}" for f in failures))
        site, uid = parse_job_id(id)
        progress = self.ctx.log.status(urn)
        async with deadline(self.ctx.cancelled, timeout) as limit:
            session = Session(settings_of(self.ctx), limit.stop)
            try:
                job = await jobs.get(session, site, uid)
                if job is None or job.get("state") in jobs.GONE:
                    raise ResourceFailure(
                        f"job {id} no longer exists (state `{(job or {}).get('state', 'unknown')}`); "
                        "run `pulumi refresh` then `pulumi up` to submit a new one"
                    )
                delta = spec.walltime - int(job.get("walltime") or 0)
                if delta:
                    sign = "+" if delta > 0 else "-"
                    await progress(f"changing the walltime of job {id} by {sign}{format_walltime(abs(delta))}")
                    try:
                        answer = await jobs.change_walltime(session, site, uid, delta)
                    except G5kError as err:
                        raise ResourceFailure(f"changing the walltime of job {id} was refused: {err}") from err
                    if answer.get("pending") not in (None, "", "0:00:00"):
                        await self.ctx.log.log(
                            WARNING,
                            f"walltime change of job {id} is pending ({answer['pending']}): other jobs hold the nodes afterwards",
                            urn=urn,
                        )
                job = await self._wait(session, id, spec, news, job, progress, limit)
                job = await jobs.get(session, site, uid) or job
            finally:
                session.close()
        return {**outputs_of(news, spec, job)}

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        site, uid = parse_job_id(id)
        progress = self.ctx.log.status(urn)
        async with deadline(self.ctx.cancelled, timeout) as limit:
            session = Session(settings_of(self.ctx), limit.stop)
            try:
                outcome = await jobs.release(session, site, uid, progress)
            except Cancelled as err:
                raise ResourceFailure(
                    limit.explain(f"stopped while waiting for job {id} to be released (it was deleted; retry `pulumi destroy` to confirm)")
                ) from err
            except G5kError as err:
                raise ResourceFailure(f"deleting job {id} failed (it stays in the stack; retry `pulumi destroy`): {err}") from err
            finally:
                session.close()
        await self.ctx.log.info(urn, f"job {id}: {outcome}")


def _imported_inputs(site: str, job: dict[str, Any]) -> tuple[dict[str, Any], Optional[str]]:
    """Inputs that declare `job` as the API shows it (defaults left out), and a warning when the
    request it was submitted with could not be told exactly."""
    walltime = int(job.get("walltime") or 0)
    command = tagging.strip_tag(job.get("command") or "")  # the user's command, not our tag (see `tagging`)
    types = list(job.get("types") or [])
    inputs: dict[str, Any] = {"site": site, "walltime": format_walltime(walltime)}
    if job.get("name"):
        inputs["name"] = job["name"]
    if job.get("project") and job["project"] != DEFAULT_PROJECT:
        inputs["project"] = job["project"]
    default_queue = default(JobArgs, "queue")
    queue = job.get("queue") or default_queue
    if queue != default_queue and not (queue == "besteffort" and "besteffort" in types):
        inputs["queue"] = queue
    if command != default(JobArgs, "command"):
        inputs["command"] = command
    if types:
        inputs["types"] = types
    if _RESERVATION_JOB.search(job.get("message") or "") and job.get("scheduled_at"):
        inputs["reservation"] = oar_date(dt.datetime.fromtimestamp(int(job["scheduled_at"]), dt.timezone.utc))

    rid = f"{site}:{job.get('uid')}"
    if not job.get("assigned_nodes"):
        raise ResourceFailure(
            f"job {rid} holds no nodes yet (`{job.get('state')}`, not placed by OAR): what it asked for "
            "cannot be read from the API (which does not return the request); import it once it is scheduled"
        )
    candidates = jobs.requests_for(jobs.holding(job))
    if not candidates:
        by_type = job.get("resources_by_type") or {}
        raise ResourceFailure(
            f"job {rid} holds resources a Job cannot declare (vlans {by_type.get('vlans')}, subnets {by_type.get('subnets')})"
        )
    chosen, warning = candidates[0], None
    mark = tagging.parse_tag(job.get("command"))
    if mark is not None:  # ours: the request whose hash the tag carries, spelled as it was submitted
        projects = {job.get("project") or ""} | ({""} if job.get("project") == DEFAULT_PROJECT else set())
        queues = {queue} | ({default_queue} if "besteffort" in types else set())
        found = next(
            (
                c
                for c in candidates
                if any(
                    tagging.request_of(
                        {"resources": resources_string(c, walltime), "types": types, "queue": q, "project": p, "command": command}
                    )
                    == mark.request
                    for q in queues
                    for p in projects
                )
            ),
            None,
        )
        if found is not None:
            chosen = found
        else:
            warning = (
                f"job {rid}: the request it was submitted with could not be told from what it holds (node "
                "properties, or a walltime changed since, are not shown by the API); imported as "
                f"`{resources_string(chosen, walltime)}`: declare it so, or `pulumi up` will replace it"
            )
    return inputs | _request_inputs(chosen, walltime), warning


def _request_inputs(request: ResourceRequest, walltime: int) -> dict[str, Any]:
    """`nodes`/`vlan`/`subnet` inputs that make `request`, or `rawResources` when they cannot
    (vlans of several types, subnets of several sizes)."""
    if request.extra_vlans or len(request.subnets) > 1:
        return {"rawResources": _WALLTIME_SUFFIX.sub("", resources_string(request, walltime))}
    nodes = []
    for group in request.nodes:
        entry: dict[str, Any] = {"count": group.count}
        if group.cluster:
            entry["cluster"] = group.cluster
        if group.properties:
            entry["properties"] = group.properties
        if group.hosts:
            entry["hosts"] = [naming.short_name(h) for h in group.hosts]
        nodes.append(entry)
    out: dict[str, Any] = {"nodes": nodes}
    if request.vlan is not None:
        out["vlan"] = {"type": request.vlan.type} | ({"count": request.vlan.count} if request.vlan.count != 1 else {})
    for size, count in request.subnets.items():
        out["subnet"] = {"size": size} | ({"count": count} if count != 1 else {})
    return out
