"""Typed definition of testbed:g5k:Job: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..typed.model import Resource, prop, schema_type


@schema_type('testbed:g5k:NodeRequest', "A group of nodes in an OAR request: `{cluster='x' AND (properties)}/nodes=count`.")
@dataclass(kw_only=True)
class NodeRequest:
    count: int = prop('How many nodes (at least 1; with `hosts`, their number).')
    cluster: Optional[str] = prop('Cluster to take them from (checked against the reference API when it answers).')
    properties: Optional[str] = prop('Extra OAR SQL filter on node properties, e.g. `gpu_count > 0`.')
    hosts: Optional[list[str]] = prop('Exactly these nodes (short names or FQDNs).')


@schema_type('testbed:g5k:VlanRequest', "KaVLAN vlans held by the job: `{type='kavlan'}/vlan=count`.")
@dataclass(kw_only=True)
class VlanRequest:
    type: Optional[str] = prop('`kavlan` (routed, 4-9, default), `kavlan-local` (1-3) or `kavlan-global` (one per site).')
    count: Optional[int] = prop('How many vlans (default 1).')


@schema_type('testbed:g5k:SubnetRequest', "Subnets of the site's g5ksubnet held by the job (`slash_22=count`).")
@dataclass(kw_only=True)
class SubnetRequest:
    size: Optional[str] = prop('`slash_22` (default), `slash_18`, `slash_16` or `slash_14`.')
    count: Optional[int] = prop('How many (default 1).')


# testbed:g5k:Job
@dataclass(kw_only=True)
class JobArgs:
    site: str = prop("Grid'5000 site, e.g. `rennes`. Changing it replaces the job.")
    nodes: Optional[list[NodeRequest]] = prop('Node groups to reserve (or give `rawResources`).')
    vlan: Optional[VlanRequest] = prop('KaVLAN vlans to reserve with the nodes.')
    subnet: Optional[SubnetRequest] = prop('Subnets to reserve with the nodes.')
    walltime: Optional[str] = prop('Duration `H:MM:SS`, `H:MM` or `H` (default `1:00:00`). Changed in place through `/jobs/{uid}/walltime` (longer or shorter; an extension the scheduler cannot grant yet stays pending, with a warning).')
    types: Optional[list[str]] = prop('OAR job types, e.g. `["deploy"]` (needed by a Deployment).')
    queue: Optional[str] = prop('OAR queue: `default` (default), `production`, `besteffort`, `testing` or `admin`.')
    project: Optional[str] = prop('OAR project to account the job to.')
    name: Optional[str] = prop('OAR job name (defaults to `<resource name>-<6 hex of the URN>`, unique to the resource: the job of a Create interrupted by a killed provider is found again by it and adopted).')
    reservation: Optional[str] = prop('Advance reservation start: `YYYY-MM-DD hh:mm:ss` (Paris time, like OAR) or ISO 8601 with an offset.')
    raw_resources: Optional[str] = prop('An OAR resource string for experts (`-l` syntax), instead of nodes/vlan/subnet; `,walltime=` may end it.')
    command: Optional[str] = prop('Command the job runs (default `sleep infinity`: the job lasts its walltime).')
    wait_until: Optional[str] = prop('`running` (default): Create returns once the job runs; `scheduled`: once OAR has placed it (useful for advance reservations).')


@dataclass(kw_only=True)
class JobState(JobArgs):
    oar_request: str = prop('The exact `resources` string submitted to OAR (known in preview).', output=True)
    uid: int = prop('OAR job id.', output=True)
    state: str = prop('OAR state at the last read (`waiting`, `launching`, `running`, ...).', output=True)
    assigned_nodes: list[str] = prop('Node FQDNs of the job (head node first).', output=True)
    vlans: list[str] = prop('KaVLAN ids held by the job.', output=True)
    subnets: Optional[list[str]] = prop('Subnets (CIDR) held by the job.', output=True)
    scheduled_at: Optional[str] = prop('Predicted or actual start (ISO 8601, UTC).', output=True)
    started_at: Optional[str] = prop('Start (ISO 8601, UTC), once running.', output=True)
    ends_at: Optional[str] = prop('When the walltime runs out (ISO 8601, UTC).', output=True)
    walltime_seconds: int = prop('Walltime in seconds as OAR knows it.', output=True)


JOB = Resource('testbed:g5k:Job', "An OAR job on one Grid'5000 site: submitted, waited for until running (with progress), extended in place when its walltime grows, deleted (and waited for) on destroy. Import with id `<site>:<uid>`.", JobArgs, JobState)
