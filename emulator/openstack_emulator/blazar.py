"""Blazar v1: leases of `physical:host` reservations, the hosts and their allocations.

A lease's status follows the emulated clock, derived at every read rather than by a background
task (so an advanced clock takes effect at once and a restart resumes exactly): PENDING before
its start, STARTING for `lease_start_seconds` after it, ACTIVE until its end, TERMINATED after.
Hosts are allocated when the lease is created (or its window changes): the hosts of the asked
`node_type` free for the whole window, else Blazar's 409 `NotEnoughHostsAvailable`. What ends
the lease's servers at its end belongs to Nova's side (`on_lease_end`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Optional

from aiohttp import web

from . import errors, timefmt
from .cloud import Cloud
from .httputil import emulator, json_body, no_content, ok, token

PREFIX = "/reservation/v1"
fail = lambda message, status=400: errors.blazar(status, message)  # noqa: E731


def status_of(cloud: Cloud, lease: dict[str, Any]) -> str:
    if lease.get("terminated"):
        return "TERMINATED"
    now = cloud.now()
    if now < lease["start"]:
        return "PENDING"
    if now < lease["start"] + cloud.config.lease_start_seconds and now < lease["end"]:
        return "STARTING"
    if now < lease["end"]:
        return "ACTIVE"
    return "TERMINATED"


def _matches(host: dict[str, Any], properties: str) -> bool:
    """Blazar's JSON filters: `["=", "$node_type", "x"]`, `["and", f1, f2, …]`; "" / [] any."""
    if not properties:
        return True
    try:
        expr = json.loads(properties)
    except ValueError:
        raise fail(f"Malformed resource_properties: {properties}") from None

    def check(e: Any) -> bool:
        if not e:
            return True
        if not isinstance(e, list) or len(e) < 1:
            raise fail(f"Malformed resource_properties: {properties}")
        op = e[0]
        if op == "and":
            return all(check(x) for x in e[1:])
        if op == "or":
            return any(check(x) for x in e[1:])
        if op in ("=", "==", "!=") and len(e) == 3 and isinstance(e[1], str) and e[1].startswith("$"):
            value = str(host.get(e[1][1:]))
            return (value == str(e[2])) == (op != "!=")
        raise fail(f"Unsupported resource_properties operator {op!r}")

    return check(expr)


def _busy(cloud: Cloud, start: float, end: float, skip: Optional[str] = None) -> set[str]:
    busy: set[str] = set()
    for lease in cloud.all("lease").values():
        if lease["id"] == skip or status_of(cloud, lease) == "TERMINATED":
            continue
        if lease["start"] < end and start < lease["end"]:
            for r in lease["reservations"]:
                busy.update(r["hosts"])
    return busy


def _allocate(cloud: Cloud, reservations: list[dict[str, Any]], start: float, end: float, skip: Optional[str] = None) -> None:
    """Give each reservation its hosts for [start, end), or raise 409 (nothing changed)."""
    busy = _busy(cloud, start, end, skip)
    chosen: list[list[str]] = []
    for r in reservations:
        free = [
            hid
            for hid, h in sorted(cloud.hosts.items(), key=lambda kv: int(kv[0]))
            if hid not in busy and _matches(h, r["resource_properties"])
        ]
        if len(free) < r["min"]:
            raise fail("Not enough hosts available", 409)
        take = free[: r["max"]]
        busy.update(take)
        chosen.append(take)
    for r, hosts in zip(reservations, chosen):
        r["hosts"] = hosts


def _view(cloud: Cloud, lease: dict[str, Any]) -> dict[str, Any]:
    status = status_of(cloud, lease)
    active = status in ("ACTIVE", "STARTING")
    r_status = {"PENDING": "pending", "STARTING": "pending", "ACTIVE": "active"}.get(status, "deleted")
    return {
        "id": lease["id"],
        "name": lease["name"],
        "status": status,
        "degraded": False,
        "start_date": timefmt.lease(lease["start"]),
        "end_date": timefmt.lease(lease["end"]),
        "created_at": timefmt.db(lease["created"]),
        "updated_at": timefmt.db(lease.get("updated", lease["created"])),
        "user_id": lease["user_id"],
        "project_id": cloud.config.project_id,
        "trust_id": lease["trust_id"],
        "reservations": [
            {
                "id": r["id"],
                "lease_id": lease["id"],
                "resource_id": r["resource_id"],
                "resource_type": "physical:host",
                "min": r["min"],
                "max": r["max"],
                "hypervisor_properties": r.get("hypervisor_properties", ""),
                "resource_properties": r["resource_properties"],
                "before_end": "default",
                "status": r_status,
                "missing_resources": False,
                "resources_changed": False,
                "created_at": timefmt.db(lease["created"]),
                "updated_at": None,
            }
            for r in lease["reservations"]
        ],
        "events": [
            {
                "id": f"{lease['id']}-{kind}",
                "lease_id": lease["id"],
                "event_type": kind,
                "time": timefmt.lease(when),
                "status": "DONE" if done else "UNDONE",
            }
            for kind, when, done in (
                ("start_lease", lease["start"], active or status == "TERMINATED"),
                ("end_lease", lease["end"], status == "TERMINATED"),
            )
        ],
    }


def _date(value: Any, what: str) -> float:
    if not isinstance(value, str):
        raise fail(f"{what} must be a date `YYYY-MM-DD HH:MM`")
    try:
        return timefmt.parse_api(value)
    except ValueError:
        raise fail(f"{what} must be a date `YYYY-MM-DD HH:MM`, got {value!r}") from None


def _lease(cloud: Cloud, lease_id: str) -> dict[str, Any]:
    lease = cloud.all("lease").get(lease_id)
    if lease is None or lease.get("project") != cloud.config.project_id:
        raise fail(f"Object with {{'lease_id': '{lease_id}'}} not found", 404)
    return lease


async def list_leases(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    leases = [x for x in cloud.all("lease").values() if x.get("project") == cloud.config.project_id]
    return ok({"leases": [_view(cloud, x) for x in sorted(leases, key=lambda x: x["created"])]})


async def create_lease(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    tok = token(request)
    body = await json_body(request, fail)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise fail("A lease needs a name")
    if any(x["name"] == name and x.get("project") == cloud.config.project_id for x in cloud.all("lease").values()):
        raise fail(f"The lease with name: {name} already exists", 409)
    now = timefmt.minute_floor(cloud.now())
    start = now if body.get("start_date") == "now" else _date(body.get("start_date"), "start_date")
    end = _date(body.get("end_date"), "end_date")
    if start < now:
        raise fail(f"Start date must be later than current date (now: {timefmt.db(cloud.now())})")
    if end <= start:
        raise fail("End date must be later than start date")
    wanted = body.get("reservations")
    if not isinstance(wanted, list) or not wanted:
        raise fail("A lease needs at least one reservation")
    reservations = []
    for w in wanted:
        if not isinstance(w, dict) or w.get("resource_type") != "physical:host":
            raise fail("Only physical:host reservations are supported here")
        try:
            lo, hi = int(w.get("min") or 0), int(w.get("max") or 0)
        except (TypeError, ValueError):
            raise fail("min and max must be whole numbers") from None
        if lo < 1 or hi < lo:
            raise fail("min must be at least 1 and max at least min")
        reservations.append(
            {
                "id": str(uuid.uuid4()),
                "resource_id": str(uuid.uuid4()),
                "min": lo,
                "max": hi,
                "resource_properties": str(w.get("resource_properties") or ""),
                "hypervisor_properties": str(w.get("hypervisor_properties") or ""),
            }
        )
    _allocate(cloud, reservations, start, end)
    lease = {
        "id": str(uuid.uuid4()),
        "name": name,
        "project": cloud.config.project_id,
        "user_id": tok["user_id"],
        "trust_id": str(uuid.uuid4()),
        "start": start,
        "end": end,
        "created": cloud.now(),
        "reservations": reservations,
    }
    cloud.save("lease", lease)
    return ok({"lease": _view(cloud, lease)}, 201)


async def get_lease(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    return ok({"lease": _view(cloud, _lease(cloud, request.match_info["lease_id"]))})


async def update_lease(request: web.Request) -> web.Response:
    """Rename, move the end (extend or shorten), move a start that has not come yet."""
    cloud = emulator(request).cloud
    lease = _lease(cloud, request.match_info["lease_id"])
    body = await json_body(request, fail)
    status = status_of(cloud, lease)
    if status == "TERMINATED":
        raise fail("Cannot update a terminated lease", 409)
    start, end = lease["start"], lease["end"]
    if "start_date" in body:
        if status != "PENDING":
            raise fail("Cannot modify the start date of already started leases", 409)
        start = _date(body["start_date"], "start_date")
    if "end_date" in body:
        end = _date(body["end_date"], "end_date")
        if end <= cloud.now():
            raise fail("End date must be later than current date")
    if end <= start:
        raise fail("End date must be later than start date")
    if (start, end) != (lease["start"], lease["end"]):
        trial = [dict(r) for r in lease["reservations"]]
        busy = _busy(cloud, start, end, skip=lease["id"])
        if any(set(r["hosts"]) & busy for r in trial):
            raise fail("Not enough resources available with query", 409)
    if isinstance(body.get("name"), str) and body["name"]:
        lease["name"] = body["name"]
    lease.update(start=start, end=end, updated=cloud.now())
    cloud.save("lease", lease)
    return ok({"lease": _view(cloud, lease)})


async def delete_lease(request: web.Request) -> web.Response:
    emu = emulator(request)
    lease = _lease(emu.cloud, request.match_info["lease_id"])
    from .nova import delete

    for server in [s for s in emu.cloud.all("server").values() if s.get("lease") == lease["id"]]:
        delete(emu.cloud, server)
    emu.cloud.drop("lease", lease["id"])
    return no_content()


async def list_hosts(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    return ok({"hosts": sorted(cloud.hosts.values(), key=lambda h: int(h["id"]))})


def _allocations(cloud: Cloud, host_id: str) -> dict[str, Any]:
    reservations = []
    for lease in cloud.all("lease").values():
        if status_of(cloud, lease) == "TERMINATED":
            continue
        for r in lease["reservations"]:
            if host_id in r.get("hosts", []):
                reservations.append(
                    {
                        "id": r["id"],
                        "lease_id": lease["id"],
                        "start_date": timefmt.lease(lease["start"]),
                        "end_date": timefmt.lease(lease["end"]),
                    }
                )
    return {"resource_id": host_id, "reservations": reservations}


async def list_allocations(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    return ok({"allocations": [_allocations(cloud, hid) for hid in sorted(cloud.hosts, key=int)]})


async def host_allocation(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    host_id = request.match_info["host_id"]
    if host_id not in cloud.hosts:
        raise fail(f"Object with {{'host_id': '{host_id}'}} not found", 404)
    return ok({"allocation": _allocations(cloud, host_id)})


def reservation(cloud: Cloud, reservation_id: str) -> Optional[tuple[dict[str, Any], dict[str, Any]]]:
    """(lease, reservation) of a reservation id (Nova's scheduler hint), if the project has it."""
    for lease in cloud.all("lease").values():
        for r in lease["reservations"]:
            if r["id"] == reservation_id and lease.get("project") == cloud.config.project_id:
                return lease, r
    return None


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/leases", list_leases)
    r.add_post(f"{PREFIX}/leases", create_lease)
    r.add_get(f"{PREFIX}/leases/{{lease_id}}", get_lease)
    r.add_put(f"{PREFIX}/leases/{{lease_id}}", update_lease)
    r.add_delete(f"{PREFIX}/leases/{{lease_id}}", delete_lease)
    r.add_get(f"{PREFIX}/os-hosts", list_hosts)
    r.add_get(f"{PREFIX}/os-hosts/allocations", list_allocations)
    r.add_get(f"{PREFIX}/os-hosts/{{host_id}}/allocation", host_allocation)
