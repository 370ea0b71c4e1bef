"""OAR jobs: submission (validation, admission rules, advance reservations), the scheduler's
state machine, and the `/sites/{s}/jobs` endpoints.

Lifecycle (the note §3): waiting → launching → running → (DELETE or walltime) finishing → error;
a DELETE of a waiting job → error at once. Every transition happens in `tick()`, which runs on
every request and in a background task, against the emulated clock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any, Callable, Optional
from zoneinfo import ZoneInfo

from aiohttp import web

from . import oar
from .clock import Clock
from .errors import NOT_AUTHORIZED, ApiError, oar_refusal, oar_url, relayed
from .reference import Platform
from .store import Store

log = logging.getLogger("g5k_emulator.jobs")
PARIS = ZoneInfo("Europe/Paris")
LAUNCH_SECONDS = 5  # emulated seconds in `launching` when no real hosts are built
FINISH_SECONDS = 5  # emulated seconds in `finishing`
QUEUES = {"default": 168 * 3600, "production": 168 * 3600, "besteffort": 168 * 3600, "testing": 24 * 3600, "admin": 168 * 3600}
ACTIVE = ("waiting", "hold", "launching", "running", "finishing")
HOLDING = ("launching", "running", "finishing")  # states whose resources are really taken


def paris(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), PARIS).strftime("%Y-%m-%d %H:%M:%S")


def parse_paris(text: str) -> float:
    m = re.fullmatch(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", text)
    if not m:
        raise ValueError(text)
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=PARIS).timestamp()


def _oarsub_lines(*lines: str) -> str:
    return "\n".join(["[ADMISSION RULE] Modify resource description with type constraints", *lines]) + "\n"


class Jobs:
    """Every job of every site, in memory, written through to the store."""

    def __init__(self, platform: Platform, clock: Clock, store: Store):
        self.platform = platform
        self.clock = clock
        self.store = store
        self.jobs: dict[tuple[str, int], dict[str, Any]] = {}
        for job in store.load("job").values():
            self.jobs[(job["site"], job["uid"])] = job
        self.counters: dict[str, int] = store.get("meta", "job_counters", {}) or {}
        # set by the hosts manager: called when a job must get (or lose) its real hosts
        self.on_launch: Optional[Callable[[dict[str, Any]], None]] = None
        self.on_end: Optional[Callable[[dict[str, Any]], None]] = None

    # ---- persistence ---------------------------------------------------------------------

    def save(self, job: dict[str, Any]) -> None:
        self.store.put("job", f"{job['site']}/{job['uid']}", job)

    def _next_uid(self, site: str) -> int:
        uid = self.counters.get(site, 1000) + 1
        self.counters[site] = uid
        self.store.put("meta", "job_counters", self.counters)
        return uid

    def get(self, site: str, uid: Any) -> dict[str, Any]:
        try:
            key = (site, int(str(uid)))
        except ValueError:
            raise ApiError(404, f"Couldn't find OAR::Job with 'job_id'={uid}") from None
        job = self.jobs.get(key)
        if job is None:
            raise ApiError(404, f"Couldn't find OAR::Job with 'job_id'={uid}")
        return job

    def _event(self, job: dict[str, Any], kind: str, description: str) -> None:
        events = job.setdefault("events", [])
        events.append({"uid": len(events) + 1, "created_at": int(self.clock.now()), "type": kind, "description": description})

    # ---- submission ----------------------------------------------------------------------

    def submit(self, site: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        reservation = body.get("reservation")
        command = body.get("command")
        if reservation is not None and not isinstance(reservation, str):
            raise ApiError(400, "The job you are trying to submit is not valid: `reservation` should be a String.")
        if not command and not reservation:
            raise ApiError(400, "The job you are trying to submit is not valid: you must give a :command to execute on launch")
        if command is not None and not isinstance(command, str):
            raise ApiError(400, "The job you are trying to submit is not valid: `command` should be a String.")
        types = body.get("types") or []
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ApiError(400, "The job you are trying to submit is not valid: `types` should be an Array of Strings.")
        queue = body.get("queue") or "default"
        if not isinstance(queue, str) or queue not in QUEUES:
            raise oar_refusal(site, 500, _oarsub_lines(f"# Error: queue '{queue}' does not exist"), "Oar server error")
        try:
            request = oar.parse_resources(body.get("resources") or "nodes=1")
            walltime = request.walltime
            if walltime is None and body.get("walltime") is not None:
                walltime = oar.parse_walltime(body["walltime"])
        except oar.RequestError as err:
            raise oar_refusal(site, 400, _oarsub_lines(f"[oarsub] Error: bad resource request: {err}")) from None
        walltime = walltime or oar.DEFAULT_WALLTIME
        if walltime > QUEUES[queue]:
            raise oar_refusal(
                site,
                400,
                _oarsub_lines(f"[ADMISSION RULE] Error: Walltime too big for this job, it is limited to {QUEUES[queue] // 3600} hours"),
            )
        if queue == "besteffort" and reservation:
            raise oar_refusal(site, 400, _oarsub_lines("[ADMISSION RULE] Error: a besteffort job cannot be a reservation"))
        if queue == "admin":
            raise oar_refusal(
                site, 400, _oarsub_lines(f"[ADMISSION RULE] Error: only oar administrators can submit to the admin queue ({user} is not)")
            )
        if "besteffort" in types:
            queue = "besteffort"
        properties = body.get("properties")
        if properties is not None and not isinstance(properties, str):
            raise ApiError(400, "The job you are trying to submit is not valid: `properties` should be a String.")
        if properties:
            try:
                oar.Filter(properties)  # a syntax check; _request() joins it to each node group
            except oar.RequestError as err:
                raise oar_refusal(site, 400, _oarsub_lines(f"[oarsub] Error: bad properties: {err}")) from None

        request = self._with_properties(request, f"({properties}) AND maintenance = 'NO'" if properties else "maintenance = 'NO'")
        placer = oar.Placer(self.platform, site, queue, types)
        try:
            feasible = placer.feasible(request)
        except oar.NotEnoughResources:
            feasible = False
        except oar.RequestError as err:
            raise oar_refusal(site, 400, _oarsub_lines(f"[oarsub] Error: bad resource request: {err}")) from None
        if not feasible:
            raise oar_refusal(
                site,
                500,
                _oarsub_lines(
                    "There are not enough resources for your request",
                    "OAR_JOB_ID= -5",
                    "Oarsub failed: please verify your request syntax or ask for support to your admin.",
                ),
                "Oar server error",
            )

        start: Optional[float] = None
        if reservation:
            text = reservation.strip()
            try:
                if text == "now":
                    start = now
                else:
                    begin, _, end = text.partition(",")
                    start = parse_paris(begin)
                    if end.strip():
                        walltime = int(parse_paris(end) - start)
                        if walltime <= 0:
                            raise ValueError(text)
            except ValueError:
                raise ApiError(
                    400, f"Syntax error in reservation start date: '{reservation}'. Format must be YYYY-MM-DD hh:mm:ss"
                ) from None

        uid = self._next_uid(site)
        project = body.get("project") if isinstance(body.get("project"), str) else None
        job: dict[str, Any] = {
            "uid": uid,
            "site": site,
            "user": user,
            "name": body.get("name") if isinstance(body.get("name"), str) else None,
            "project": project or "default",
            "queue": queue,
            "state": "waiting",
            "types": types,
            "mode": "PASSIVE",
            "command": command or "",
            "directory": body.get("directory") or f"/home/{user}",
            "properties": f"({properties}) AND maintenance = 'NO'" if properties else "maintenance = 'NO'",
            "walltime": walltime,
            "submitted_at": int(now),
            "started_at": 0,
            "resources": body.get("resources") or "nodes=1",
            "reservation": None,
            "alloc": None,
            "scheduled_at": None,
            "killed": False,
            "events": [],
            "message": f"R=1,W={oar.format_walltime(walltime)},J={'R' if reservation else 'B'},Q={queue}"
            + (f",P={project}" if project else "")
            + (f",T={'|'.join(types)}" if types else "")
            + " (Karma=0.000,quota_ok)",
        }
        if start is not None:
            if start + walltime <= now:
                job["state"] = "error"
                job["stopped_at"] = int(now)
                self.jobs[(site, uid)] = job
                self.save(job)
                raise oar_refusal(
                    site,
                    400,
                    _oarsub_lines(
                        f"OAR_JOB_ID={uid}", "Reservation mode: waiting validation...", "Reservation not valid --> KO (Reservation too old)"
                    ),
                )
            start = max(start, now)
            placed = self._placed(site, include_batch=False)
            found = oar.earliest(placer, request, walltime, placed, start, only_at=start)
            if found is None:
                later = oar.earliest(placer, request, walltime, placed, start)
                job["state"] = "error"
                job["stopped_at"] = int(now)
                self.jobs[(site, uid)] = job
                self.save(job)
                reason = f"This reservation could run at {paris(later[0])}" if later else "This reservation cannot run"
                raise oar_refusal(
                    site,
                    400,
                    _oarsub_lines(
                        f"OAR_JOB_ID={uid}", "Reservation mode: waiting validation...", f"Reservation not valid --> KO ({reason})"
                    ),
                )
            job["reservation"] = start
            job["scheduled_at"] = int(start)
            job["alloc"] = found[1].as_dict()
            self._event(job, "RESERVATION_VALIDATED", "[oarsub] Reservation valid --> OK")
        self.jobs[(site, uid)] = job
        self.save(job)
        log.info("job %s/%s (%s) submitted: %s", site, uid, user, job["resources"])
        self.tick()
        return job

    # ---- scheduling ----------------------------------------------------------------------

    def _placed(self, site: str, include_batch: bool) -> list[oar.Placed]:
        now = self.clock.now()
        placed = []
        for job in self.jobs.values():
            if job["site"] != site or not job.get("alloc"):
                continue
            alloc = oar.Allocation.from_dict(job["alloc"])
            if job["state"] in ("launching", "running"):
                placed.append(
                    oar.Placed(
                        job["started_at"],
                        max(job["started_at"] + job["walltime"], now + 1),
                        alloc,
                        job["uid"],
                        job["queue"] == "besteffort" and not job["killed"],
                    )
                )
            elif job["state"] == "finishing":
                placed.append(oar.Placed(job["started_at"], now + FINISH_SECONDS + 1, alloc))
            elif job["state"] == "waiting" and job.get("reservation") is not None:
                placed.append(oar.Placed(job["reservation"], job["reservation"] + job["walltime"], alloc))
            elif include_batch and job["state"] == "waiting" and job.get("scheduled_at"):
                placed.append(oar.Placed(job["scheduled_at"], job["scheduled_at"] + job["walltime"], alloc))
        return placed

    def _request(self, job: dict[str, Any]) -> oar.Request:
        return self._with_properties(oar.parse_resources(job["resources"]), job["properties"])

    @staticmethod
    def _with_properties(request: oar.Request, props: str) -> oar.Request:
        """Each node group's filter AND the job's properties (as OAR applies `-p`)."""
        for group in request.groups:
            if group.kind == "nodes":
                group.filter = oar.Filter(f"({group.filter.text}) AND ({props})" if group.filter.text.strip() else props)
        return request

    def tick(self) -> None:
        """Advance every job to where the emulated clock says it is."""
        now = self.clock.now()
        changed: set[tuple[str, int]] = set()
        active = sorted(((k, j) for k, j in self.jobs.items() if j["state"] in ACTIVE), key=lambda kv: kv[0][1])
        before = {k: j["state"] for k, j in active}
        for key, job in active:
            state = job["state"]
            if state in ("waiting", "hold") and job["killed"]:
                job.update(state="error", stopped_at=int(now), message="Job killed by Leon directly")
                changed.add(key)
            elif (state == "launching" and job["killed"]) or (
                state == "running" and (job["killed"] or now >= job["started_at"] + job["walltime"])
            ):
                if not job["killed"]:
                    job["killed"] = True
                    self._event(
                        job,
                        "WALLTIME",
                        f"[sarko] Job [{job['uid']}] from {job['started_at']} with {job['walltime']}; current time={int(now)} (Elapsed)",
                    )
                job.update(state="finishing", finishing_at=now)
                if self.on_end:
                    self.on_end(job)
                changed.add(key)
            elif state == "finishing" and now >= job["finishing_at"] + FINISH_SECONDS and not job.get("hosts_busy"):
                job.update(state="error", stopped_at=int(now), exit_code=None)
                changed.add(key)
            elif state == "launching" and (
                job.get("hosts_ready") or (self.on_launch is None and now >= job["started_at"] + LAUNCH_SECONDS)
            ):
                job["state"] = "running"
                if self.on_launch is not None:
                    # Building real hosts takes real seconds, which an accelerated clock turns
                    # into hours: the walltime counts from when the nodes are actually up.
                    job["started_at"] = max(job["started_at"], int(now))
                changed.add(key)
        # start or predict the waiting jobs, site by site, oldest first
        for site in self.platform.sites:
            waiting = [j for _, j in active if j["site"] == site and j["state"] == "waiting"]
            if not waiting:
                continue
            placed = self._placed(site, include_batch=False)
            for job in waiting:
                if job.get("reservation") is not None:
                    if now >= job["reservation"]:
                        self._launch(job, job["reservation"])
                        changed.add((site, job["uid"]))
                    continue
                placer = oar.Placer(self.platform, site, job["queue"], job["types"])
                besteffort = job["queue"] == "besteffort"
                visible = placed if besteffort else [p for p in placed if not p.preemptible]
                found = oar.earliest(placer, self._request(job), job["walltime"], visible, now)
                if found is None:
                    continue
                start, alloc = found
                old = (job.get("scheduled_at"), job.get("alloc"))
                job["alloc"] = alloc.as_dict()
                victims = [p for p in placed if p.preemptible and set(p.alloc.nodes) & set(alloc.nodes)] if start <= now else []
                if victims and not besteffort:
                    # OAR kills besteffort jobs holding resources a normal job needs; this job
                    # starts once they are gone.
                    for victim in victims:
                        self._preempt(self.jobs[(site, victim.uid)], job["uid"])
                        victim.preemptible = False
                        changed.add((site, victim.uid))
                    job["scheduled_at"] = int(now)
                    placed.append(oar.Placed(now, now + job["walltime"], alloc))
                    changed.add((site, job["uid"]))
                elif start <= now:
                    self._launch(job, now)
                    placed.append(oar.Placed(now, now + job["walltime"], alloc))
                else:
                    job["scheduled_at"] = int(start)
                    placed.append(oar.Placed(start, start + job["walltime"], alloc))
                if old != (job.get("scheduled_at"), job.get("alloc")) or job["state"] != "waiting":
                    changed.add((site, job["uid"]))
        for key in changed:
            job = self.jobs[key]
            self.save(job)
            if before.get(key) != job["state"]:
                log.info("job %s/%s (%s): %s -> %s", key[0], key[1], job["user"], before.get(key), job["state"])

    def _preempt(self, job: dict[str, Any], by: int) -> None:
        job["killed"] = True
        self._event(job, "BESTEFFORT_KILL", f"[sarko] kill the besteffort job {job['uid']} for the job {by}")

    def _launch(self, job: dict[str, Any], start: float) -> None:
        job.update(state="launching", started_at=int(start), scheduled_at=int(start))
        job["hosts_ready"] = False
        if self.on_launch:
            self.on_launch(job)

    # ---- kill, walltime ------------------------------------------------------------------

    def delete(self, site: str, uid: Any, user: str) -> dict[str, Any]:
        job = self.get(site, uid)
        if job["user"] != user:
            raise ApiError(403, NOT_AUTHORIZED)
        self._kill(job)
        return job

    def _kill(self, job: dict[str, Any]) -> None:
        if job["killed"] or job["state"] in ("error", "terminated"):
            uid = job["uid"]
            body = {
                "code": 400,
                "title": "Bad Request",
                "message": f"Oardel command exited with status 1536: Deleting the job = {uid} ...ERROR.\n"
                f"Cannot frag {uid} ; This job was already killed.\n",
            }
            raise relayed(400, oar_url(job["site"]).replace("jobs.json", f"jobs/{uid}.json"), json.dumps(body))
        job["killed"] = True
        self._event(job, "FRAG_JOB_REQUEST", f"[oardel] Kill request for the job {job['uid']} by {job['user']}")
        self.save(job)

    def kill_from_outside(self, site: str, uid: Any) -> dict[str, Any]:
        job = self.get(site, uid)
        if not job["killed"] and job["state"] in ACTIVE:
            job["killed"] = True
            self._event(job, "SEND_KILL_JOB", "[emulator] job killed by the platform")
            self.save(job)
        self.tick()
        return job

    def hold(self, site: str, uid: Any, held: bool) -> dict[str, Any]:
        """What `oarhold`/`oarresume` do: a waiting job is held (not scheduled) or released."""
        job = self.get(site, uid)
        if held and job["state"] == "waiting" and job.get("reservation") is None:
            job.update(state="hold", alloc=None, scheduled_at=None)
            self._event(job, "HOLD_WAITING_JOB", f"[oarhold] job {job['uid']} held")
        elif not held and job["state"] == "hold":
            job["state"] = "waiting"
            self._event(job, "RESUME_JOB", f"[oarresume] job {job['uid']} resumed")
        else:
            raise ApiError(422, f"job {job['uid']} is {job['state']}: only a waiting batch job can be held, only a held job resumed")
        self.save(job)
        self.tick()
        return job

    def walltime_info(self, job: dict[str, Any]) -> dict[str, Any]:
        wt = oar.format_walltime(job["walltime"])
        pending = job.get("walltime_pending")
        return {
            "walltime": wt,
            "granted": oar.format_walltime(job.get("walltime_granted", 0)),
            "granted_with_force": "0:00:00",
            "granted_with_delay_next_jobs": "0:00:00",
            "pending": pending or "0:00:00",
            "possible": oar.format_walltime(QUEUES[job["queue"]] - job["walltime"]),
            "force": "NO",
            "delay_next_jobs": "NO",
            "whole": "NO",
            "timeout": "0:00:00",
        }

    def change_walltime(self, job: dict[str, Any], user: str, text: Any) -> dict[str, Any]:
        if job["user"] != user:
            raise ApiError(403, NOT_AUTHORIZED)
        if job["state"] not in ("running", "waiting", "launching"):
            raise ApiError(400, f"Walltime change for job {job['uid']} is not possible: the job is {job['state']}")
        m = re.fullmatch(r"\s*([+-]?)(\d+(?::\d+){0,2})\s*", str(text or ""))
        if not m:
            raise ApiError(400, "Walltime change: bad walltime format, expected [+|-]h[:m[:s]]")
        delta = oar.parse_walltime(m.group(2))
        new = job["walltime"] + delta if m.group(1) == "+" else job["walltime"] - delta if m.group(1) == "-" else delta
        if new <= 0 or new > QUEUES[job["queue"]]:
            raise ApiError(400, f"Walltime change for job {job['uid']} is not possible: limited to {QUEUES[job['queue']] // 3600} hours")
        others = [p for p in self._placed(job["site"], include_batch=False) if p.alloc.nodes != (job.get("alloc") or {}).get("nodes")]
        start = job["started_at"] or job.get("scheduled_at") or self.clock.now()
        busy = oar.busy_during(others, start, start + new)
        mine = oar.Allocation.from_dict(job.get("alloc"))
        if set(mine.nodes) & busy.nodes or set(mine.vlans) & busy.vlans:
            job["walltime_pending"] = oar.format_walltime(abs(new - job["walltime"]))
        else:
            job["walltime_granted"] = job.get("walltime_granted", 0) + (new - job["walltime"])
            job["walltime"] = new
            self._event(job, "WALLTIME_CHANGE_GRANTED", f"walltime changed to {oar.format_walltime(new)}")
        self.save(job)
        return self.walltime_info(job)

    # ---- API objects ---------------------------------------------------------------------

    def api_object(self, job: dict[str, Any], base: str, resources: bool = True, events: bool = True) -> dict[str, Any]:
        site = job["site"]
        out: dict[str, Any] = {
            "uid": job["uid"],
            "user": job["user"],
            "user_uid": job["user"],
            "name": job.get("name"),
            "project": job["project"],
            "queue": job["queue"],
            "state": job["state"],
            "types": job["types"],
            "mode": job["mode"],
            "command": job["command"],
            "directory": job["directory"],
            "properties": job["properties"],
            "walltime": job["walltime"],
            "submitted_at": job["submitted_at"],
            "scheduled_at": job.get("scheduled_at"),
            "started_at": job["started_at"],
            "stopped_at": job.get("stopped_at"),
            "exit_code": job.get("exit_code"),
            "message": job["message"],
            "links": [
                {"rel": "self", "href": f"{base}/sites/{site}/jobs/{job['uid']}", "type": "application/vnd.grid5000.item+json"},
                {"rel": "parent", "href": f"{base}/sites/{site}", "type": "application/vnd.grid5000.item+json"},
            ],
        }
        if events:
            out["events"] = job.get("events", [])
        if resources:
            alloc = oar.Allocation.from_dict(job.get("alloc"))
            out["assigned_nodes"] = alloc.nodes
            by_type: dict[str, list[str]] = {}
            if alloc.nodes:
                by_type["cores"] = [f"{n}/{c}" for n in alloc.nodes for c in range(self._cores(n))]
            if alloc.vlans:
                by_type["vlans"] = [str(v) for v in alloc.vlans]
            if alloc.subnets:
                by_type["subnets"] = alloc.subnets
            out["resources_by_type"] = by_type
        return {k: v for k, v in out.items() if v is not None}

    def _cores(self, fqdn: str) -> int:
        node = self.platform.nodes.get(fqdn)
        cluster = self.platform.cluster(node.site, node.cluster) if node else None
        return cluster.cores if cluster else 1

    def listing(self, site: str, query: dict[str, str]) -> tuple[int, int, list[dict[str, Any]]]:
        jobs = [j for j in self.jobs.values() if j["site"] == site]
        for key in ("user", "name", "project", "queue"):
            if query.get(key):
                jobs = [j for j in jobs if j.get(key) == query[key]]
        if query.get("job_id"):
            jobs = [j for j in jobs if str(j["uid"]) == query["job_id"]]
        if query.get("state"):
            states = {s.strip().capitalize() for s in query["state"].split(",")}
            jobs = [j for j in jobs if j["state"].capitalize() in states]
        jobs.sort(key=lambda j: j["uid"], reverse=True)
        offset = _int(query.get("offset"), 0)
        limit = min(_int(query.get("limit"), 50), 500)
        return len(jobs), offset, jobs[offset : offset + limit]

    def active_allocations(self, site: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs.values() if j["site"] == site and j["state"] in HOLDING]


def _int(text: Optional[str], default: int) -> int:
    try:
        return max(0, int(text)) if text is not None else default
    except ValueError:
        raise ApiError(400, f"Bad Request: {text!r} is not an integer") from None


# ---- endpoints -----------------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    from .httputil import JOBS, add, base, body, collection, ok, query, site_of, writer

    async def list_jobs(request: web.Request) -> web.Response:
        jobs = request.app[JOBS]
        site = site_of(request)
        q = query(request)
        total, offset, items = jobs.listing(site, q)
        with_resources = q.get("resources", "no") == "yes"
        objs = [jobs.api_object(j, base(request), resources=with_resources, events=False) for j in items]
        return ok(collection(objs, f"{base(request)}/sites/{site}/jobs", total, offset))

    async def create_job(request: web.Request) -> web.Response:
        jobs = request.app[JOBS]
        site = site_of(request)
        user = writer(request)
        data = await body(request)
        if not isinstance(data, dict):
            raise ApiError(400, "The job you are trying to submit is not valid: the body must be an object")
        job = jobs.submit(site, user, data)
        url = f"{request.scheme}://{request.host}{base(request)}/sites/{site}/jobs/{job['uid']}"
        return ok(jobs.api_object(job, base(request)), 201, {"Location": url})

    async def get_job(request: web.Request) -> web.Response:
        jobs = request.app[JOBS]
        job = jobs.get(site_of(request), request.match_info["uid"])
        return ok(jobs.api_object(job, base(request)))

    async def delete_job(request: web.Request) -> web.Response:
        jobs = request.app[JOBS]
        site = site_of(request)
        job = jobs.delete(site, request.match_info["uid"], writer(request))
        url = f"{request.scheme}://{request.host}{base(request)}/sites/{site}/jobs/{job['uid']}"
        info = f"Deleting the job = {job['uid']} ...REGISTERED. The job(s) [ {job['uid']} ] will be deleted in the near future."
        return web.Response(status=202, headers={"Location": url, "X-Oar-Info": info})

    async def get_walltime(request: web.Request) -> web.Response:
        jobs = request.app[JOBS]
        job = jobs.get(site_of(request), request.match_info["uid"])
        return ok(jobs.walltime_info(job))

    async def post_walltime(request: web.Request) -> web.Response:
        jobs = request.app[JOBS]
        job = jobs.get(site_of(request), request.match_info["uid"])
        data = await body(request)
        wanted = data.get("walltime") if isinstance(data, dict) else None
        return ok(jobs.change_walltime(job, writer(request), wanted), 202)

    add(app, "GET", "/sites/{site}/jobs", list_jobs)
    add(app, "POST", "/sites/{site}/jobs", create_job)
    add(app, "GET", "/sites/{site}/jobs/{uid}", get_job)
    add(app, "DELETE", "/sites/{site}/jobs/{uid}", delete_job)
    add(app, "GET", "/sites/{site}/jobs/{uid}/walltime", get_walltime)
    add(app, "POST", "/sites/{site}/jobs/{uid}/walltime", post_walltime)
