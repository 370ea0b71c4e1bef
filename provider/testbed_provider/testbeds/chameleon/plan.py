"""Reservation → Chameleon plan (pure): one Blazar lease, one `physical:host` reservation per
machine group, one bare-metal server per machine.

Machine-group options on chameleon: `nodeType` (Blazar's `node_type`, default
`testbed:chameleonNodeType`), `environment` (the Glance image, default `testbed:chameleonImage`),
`walltime` (the lease's length, default 1:00:00) and `start` (`YYYY-MM-DD HH:MM` UTC, default
now), the last two one value per reservation. Hosts are named as on the local testbed
(`<first role>-<n>`), which is also their Nova server name. Every server is on the configured
shared network; an experiment network is the members' addresses there (Chameleon's isolated
VLANs come from Blazar network reservations, which are not made here), so its `cidr` is the
cloud's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from ...common.results import CheckFailure
from ..base import ReservationSpec
from ..g5k.oar import OarError, parse_walltime
from ..local.naming import plan_hosts
from .settings import ChameleonSettings

OPTIONS = {"nodeType", "environment", "walltime", "start"}
DEFAULT_WALLTIME = "1:00:00"
API_DATE = "%Y-%m-%d %H:%M"  # what Blazar accepts
LEASE_DATE = "%Y-%m-%dT%H:%M:%S.%f"  # what it answers
MARK = "pulumi-testbed"  # server metadata key carrying the owner tag


@dataclass(frozen=True)
class Machine:
    name: str
    group: int
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    walltime: int  # seconds
    start: Optional[dt.datetime]  # None: now
    node_types: dict[int, str]  # group → node type
    images: dict[int, str]  # group → Glance image name
    machines: list[Machine]

    def reservations(self, spec: ReservationSpec) -> list[dict[str, Any]]:
        """Blazar's `reservations`: one `physical:host` request per group, in group order."""
        return [
            {
                "resource_type": "physical:host",
                "min": group.count,
                "max": group.count,
                "resource_properties": json.dumps(["=", "$node_type", self.node_types[g]]),
                "hypervisor_properties": "",
            }
            for g, group in enumerate(spec.machines)
        ]


def make_plan(spec: ReservationSpec, settings: ChameleonSettings) -> Plan:
    """Assumes validate() passed."""
    walltime = parse_walltime(DEFAULT_WALLTIME)
    start = None
    for group in spec.machines:
        if "walltime" in group.options:
            walltime = parse_walltime(group.options["walltime"])
        if "start" in group.options:
            start = parse_start(group.options["start"])
    return Plan(
        walltime=walltime,
        start=start,
        node_types={g: m.options.get("nodeType") or settings.node_type for g, m in enumerate(spec.machines)},
        images={g: m.options.get("environment") or settings.image for g, m in enumerate(spec.machines)},
        machines=[Machine(h.name, h.group, h.roles) for h in plan_hosts(spec)],
    )


def parse_start(text: str) -> dt.datetime:
    return dt.datetime.strptime(text.strip(), API_DATE).replace(tzinfo=dt.timezone.utc)


def validate(spec: ReservationSpec, now: Optional[dt.datetime] = None) -> list[CheckFailure]:
    """Machine options, one walltime and start per reservation, a start in the future, networks
    without `cidr` (the shared network's addressing is the cloud's)."""
    failures: list[CheckFailure] = []
    fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
    walltimes: dict[int, int] = {}
    starts: dict[int, dt.datetime] = {}
    now = now or dt.datetime.now(dt.timezone.utc)
    for g, group in enumerate(spec.machines):
        if group.kind != "host":
            fail(f"machines[{g}].kind", "the chameleon backend reserves bare-metal nodes (`host`); VMs on them are not supported")
        for key in sorted(set(group.options) - OPTIONS):
            fail(f"machines[{g}].{key}", f"`{key}` is not a chameleon option (known: {', '.join(sorted(OPTIONS))})")
        if "walltime" in group.options:
            try:
                walltimes[g] = parse_walltime(group.options["walltime"], f"machines[{g}].walltime")
            except OarError as err:
                fail(err.property, str(err))
        if "start" in group.options:
            try:
                starts[g] = parse_start(str(group.options["start"]))
            except ValueError:
                fail(f"machines[{g}].start", f"`{group.options['start']}` is not a UTC date `YYYY-MM-DD HH:MM`")
                continue
            if starts[g] <= now:
                fail(
                    f"machines[{g}].start",
                    f"{group.options['start']} UTC is in the past (it is {now.strftime(API_DATE)} UTC): omit `start` to begin now",
                )
    for values, key in ((walltimes, "walltime"), (starts, "start")):
        if len(set(values.values())) > 1:
            first = min(values)
            for g, v in values.items():
                if v != values[first]:
                    fail(f"machines[{g}].{key}", f"differs from machines[{first}].{key}: a lease has one {key}")
    for k, net in enumerate(spec.networks):
        if net.cidr is not None:
            fail(f"networks[{k}].cidr", "on chameleon a network's addresses are the servers' on the shared network; omit `cidr`")
    return failures


def lease_name(spec: ReservationSpec, owner: str) -> str:
    """`<name>-<6 hex of the URN>`: the lease's name is how an interrupted create is found
    again (Blazar has no free-form tags), so it is made unique to the resource."""
    return f"{spec.name}-{owner_tag(owner)}" if owner else spec.name


def owner_tag(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:6]


def same_request(lease: dict[str, Any], wanted: list[dict[str, Any]]) -> bool:
    """Whether a found lease asks for what `wanted` asks (per group: count and properties)."""

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        props = r.get("resource_properties") or ""
        try:
            props = json.dumps(json.loads(props)) if props else ""
        except ValueError:
            pass
        return (r.get("resource_type"), int(r.get("min") or 0), int(r.get("max") or 0), props)

    return sorted(map(key, lease.get("reservations") or [])) == sorted(map(key, wanted))


def parse_lease_date(text: str) -> dt.datetime:
    for fmt in (LEASE_DATE, "%Y-%m-%dT%H:%M:%S", API_DATE, "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def fingerprint(spec: ReservationSpec, walltime: bool = True) -> str:
    """What the lease was made for; without the walltime, to tell an extension from a change."""
    import dataclasses

    data = dataclasses.asdict(spec)
    if not walltime:
        for group in data["machines"]:
            group["options"].pop("walltime", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
