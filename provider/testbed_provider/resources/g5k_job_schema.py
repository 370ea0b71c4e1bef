"""Typed definition of testbed:g5k:Job: the source of its schema, Check and docs.

Also the vocabulary the other `testbed:g5k:*` definitions share (site and node names, vlan ids).
What no type says stays in g5k_job.validate: `rawResources` against the typed request, a node
group's `count` against its `hosts`, a walltime given twice, the walltime's and the date's
values, the besteffort advance reservation, and the reference API's clusters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

from ..testbeds.g5k.oar import CLUSTER_RE, SITE_RE, WALLTIME_RE
from ..typed.model import Resource, prop, schema_enum, schema_type

NONBLANK = r"\s*\S[\s\S]*"  # anything but blank
SITE = SITE_RE.pattern
SITE_HINT = "a Grid'5000 site name such as `rennes`"
JOB_UID_HINT = "an OAR job id (a Job's `uid`)"
# A node's short name (`taurus-3`) or FQDN (`taurus-3.lyon.grid5000.fr`).
NODE = r"[a-z][a-z0-9-]*(\.[a-z0-9-]+)*"
NODE_HINT = "a node name such as `taurus-3` (or its FQDN)"
VLAN_ID = r"[0-9]+"
VLAN_ID_HINT = 'a KaVLAN id as a string, e.g. `"4"`'
WALLTIME = r"\s*" + WALLTIME_RE.pattern.strip("^$") + r"\s*"  # OAR's forms; parse_walltime bounds the value
WALLTIME_HINT = "a duration `H:MM:SS`, `H:MM` or `H` (e.g. `1:30:00`)"


@schema_enum("testbed:g5k:Queue", "An OAR queue of Grid'5000.")
class Queue(str, enum.Enum):
    DEFAULT = "default"
    PRODUCTION = "production"
    BESTEFFORT = "besteffort"
    TESTING = "testing"
    ADMIN = "admin"


@schema_enum("testbed:g5k:VlanType", "A KaVLAN vlan type.")
class VlanType(str, enum.Enum):
    KAVLAN = "kavlan"  # routed, ids 4-9
    KAVLAN_LOCAL = "kavlan-local"  # ids 1-3
    KAVLAN_GLOBAL = "kavlan-global"  # one per site, ids 10-21


@schema_enum("testbed:g5k:SubnetSize", "A size of subnet of the site's g5ksubnet (`slash_22`: a /22).")
class SubnetSize(str, enum.Enum):
    SLASH_22 = "slash_22"
    SLASH_18 = "slash_18"
    SLASH_16 = "slash_16"
    SLASH_14 = "slash_14"


@schema_enum("testbed:g5k:WaitUntil", "When a Job's Create returns.")
class WaitUntil(str, enum.Enum):
    RUNNING = "running"  # once the job runs
    SCHEDULED = "scheduled"  # once OAR has placed it (an advance reservation)


@schema_type(
    "testbed:g5k:NodeRequest", "A group of nodes in an OAR request: `{cluster='x' AND (properties)}/nodes=count`.", label="a node group"
)
@dataclass(kw_only=True)
class NodeRequest:
    count: Optional[int] = prop("How many nodes (at least 1). With `hosts`, their number (it may then be omitted).", minimum=1)
    cluster: Optional[str] = prop(
        "Cluster to take them from (checked against the reference API when it answers).",
        pattern=CLUSTER_RE.pattern,
        hint="a cluster name such as `paravance`",
    )
    properties: Optional[str] = prop(
        "Extra OAR SQL filter on node properties, e.g. `gpu_count > 0`.",
        pattern=NONBLANK,
        hint="an OAR SQL filter on node properties, e.g. `gpu_count > 0`",
    )
    hosts: Optional[list[str]] = prop("Exactly these nodes (short names or FQDNs).", pattern=NODE, hint=NODE_HINT)


@schema_type(
    "testbed:g5k:VlanRequest",
    "KaVLAN vlans held by the job: `{type='kavlan'}/vlan=count`.",
    label="a vlan request such as `{type: kavlan}`",
)
@dataclass(kw_only=True)
class VlanRequest:
    type: VlanType = prop("`kavlan` (routed, 4-9), `kavlan-local` (1-3) or `kavlan-global` (one per site).", default=VlanType.KAVLAN)
    count: int = prop("How many vlans.", default=1, minimum=1)


@schema_type(
    "testbed:g5k:SubnetRequest",
    "Subnets of the site's g5ksubnet held by the job (`slash_22=count`).",
    label="a subnet request such as `{size: slash_22}`",
)
@dataclass(kw_only=True)
class SubnetRequest:
    size: SubnetSize = prop("Subnet size (`slash_22`: a /22).", default=SubnetSize.SLASH_22)
    count: int = prop("How many.", default=1, minimum=1)


# testbed:g5k:Job
@dataclass(kw_only=True)
class JobArgs:
    site: str = prop("Grid'5000 site, e.g. `rennes`. Changing it replaces the job.", pattern=SITE, hint=SITE_HINT)
    nodes: Optional[list[NodeRequest]] = prop("Node groups to reserve (or give `rawResources`).", min_items=1, noun="node group")
    vlan: Optional[VlanRequest] = prop("KaVLAN vlans to reserve with the nodes.")
    subnet: Optional[SubnetRequest] = prop("Subnets to reserve with the nodes.")
    walltime: str = prop(
        "Duration `H:MM:SS`, `H:MM` or `H`, at most 168 hours; or end `rawResources` with `,walltime=…` "
        "instead (then leave this one out). Changed in place through `/jobs/{uid}/walltime` (longer or "
        "shorter; an extension the scheduler cannot grant yet stays pending, with a warning).",
        default="1:00:00",
        pattern=WALLTIME,
        hint=WALLTIME_HINT,
    )
    types: Optional[list[str]] = prop(
        'OAR job types, e.g. `["deploy"]` (needed by a Deployment).', pattern=NONBLANK, hint="an OAR job type such as `deploy`"
    )
    queue: Queue = prop("OAR queue.", default=Queue.DEFAULT)
    project: Optional[str] = prop("OAR project to account the job to.", pattern=NONBLANK, hint="an OAR project name")
    name: Optional[str] = prop(
        "OAR job name (defaults to `<resource name>-<6 hex of the URN>`, unique to the resource: the job of a "
        "Create interrupted by a killed provider is found again by it and adopted).",
        pattern=NONBLANK,
        hint="an OAR job name",
    )
    reservation: Optional[str] = prop(
        "Advance reservation start: `YYYY-MM-DD hh:mm:ss` (Paris time, like OAR) or ISO 8601 with an offset.",
        hint="a date such as `2026-12-01 09:00:00` (Paris time) or ISO 8601 with an offset",
    )
    raw_resources: Optional[str] = prop(
        "An OAR resource string for experts (`-l` syntax), instead of nodes/vlan/subnet; `,walltime=` may end it.",
        pattern=NONBLANK,
        hint="an OAR resource string, e.g. `{cluster='paravance'}/nodes=2,walltime=1:00:00`",
    )
    command: str = prop(
        "Command the job runs; the default lasts the whole walltime.", default="sleep infinity", pattern=NONBLANK, hint="a shell command"
    )
    wait_until: WaitUntil = prop(
        "`running`: Create returns once the job runs; `scheduled`: once OAR has placed it (useful for advance reservations).",
        default=WaitUntil.RUNNING,
    )


@dataclass(kw_only=True)
class JobState(JobArgs):
    oar_request: str = prop("The exact `resources` string submitted to OAR (known in preview).", output=True)
    uid: int = prop("OAR job id.", output=True)
    state: str = prop("OAR state at the last read (`waiting`, `launching`, `running`, ...).", output=True)
    assigned_nodes: list[str] = prop("Node FQDNs of the job (head node first).", output=True)
    vlans: list[str] = prop("KaVLAN ids held by the job.", output=True)
    subnets: Optional[list[str]] = prop("Subnets (CIDR) held by the job.", output=True)
    scheduled_at: Optional[str] = prop("Predicted or actual start (ISO 8601, UTC).", output=True)
    started_at: Optional[str] = prop("Start (ISO 8601, UTC), once running.", output=True)
    ends_at: Optional[str] = prop("When the walltime runs out (ISO 8601, UTC).", output=True)
    walltime_seconds: int = prop("Walltime in seconds as OAR knows it.", output=True)


JOB = Resource(
    "testbed:g5k:Job",
    "An OAR job on one Grid'5000 site: submitted, waited for until running (with progress), extended in "
    "place when its walltime grows, deleted (and waited for) on destroy. Import with id `<site>:<uid>`.",
    JobArgs,
    JobState,
    label="a g5k Job",
)
