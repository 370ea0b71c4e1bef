"""The earliest start of a request, forecast for `pulumi preview` from `GET /sites/{s}/status`.

Why: on Grid'5000 a reservation costs queue time; a researcher wants to know before reserving
whether the nodes are free now or when they will be. The status API lists, for every node and
vlan, the jobs holding or predicted to hold it (`reservations`, with `started_at` or the
scheduler's `scheduled_at`, and `walltime`). From those windows the first date at which every
node group and vlan of the request is free for the whole walltime is found the way OAR's
scheduler places a job: candidates are now (or the asked start) and every end of a window.

A forecast, not a promise: jobs submitted meanwhile, jobs ending early, and OAR properties
(which the status does not carry) can move it; caveats say which of these apply. Besteffort
jobs do not count for a non-besteffort request (OAR preempts them). Pure once the status is
fetched (`earliest`), so the rules are unit-tested without an API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional

from .naming import cluster_of, node_order
from .oar import ResourceRequest, oar_date
from .session import Cancelled, G5kError, Session

USABLE = {"alive", "standby"}  # standby nodes are powered off but OAR wakes them for a job
GONE = {"terminated", "error"}
MAX_ROUNDS = 20  # multi-site: rounds of "every site at the latest site's start"


@dataclass(frozen=True)
class Group:
    count: int
    cluster: Optional[str] = None
    hosts: tuple[str, ...] = ()
    properties: Optional[str] = None


@dataclass(frozen=True)
class Demand:
    """What one job asks of one site."""

    site: str
    groups: tuple[Group, ...]
    walltime: int
    vlans: tuple[tuple[str, int], ...] = ()  # (type, count)
    besteffort: bool = False
    not_before: Optional[float] = None  # an advance reservation's start (epoch)
    eligible_clusters: Optional[frozenset[str]] = None  # for groups without a cluster (queue, exotic)
    # OAR properties evaluated from the reference API: properties → the FQDNs that have them
    evaluated: tuple[tuple[str, frozenset[str]], ...] = ()


@dataclass
class Forecast:
    site: str
    now: float  # the site's clock (status `uid`)
    start: Optional[float]  # None: no date found (the request exceeds what the site has)
    reason: str = ""  # why no date, or what holds the resources until `start`
    caveats: list[str] = field(default_factory=list)

    @property
    def immediate(self) -> bool:
        return self.start is not None and self.start <= self.now


def demand_of(
    site: str,
    request: ResourceRequest,
    walltime: int,
    queue: str = "default",
    not_before: Optional[float] = None,
    eligible: Optional[Iterable[str]] = None,
) -> Demand:
    vlans = [(v.type, v.count) for v in ((request.vlan,) if request.vlan else ()) + tuple(request.extra_vlans)]
    return Demand(
        site=site,
        groups=tuple(Group(g.count, g.cluster, tuple(g.hosts), g.properties) for g in request.nodes),
        walltime=walltime,
        vlans=tuple(vlans),
        besteffort=queue == "besteffort",
        not_before=not_before,
        eligible_clusters=frozenset(eligible) if eligible is not None else None,
    )


def _windows(holders: dict[str, Any], now: float, besteffort: bool) -> tuple[dict[str, list[tuple[float, float, int]]], set[int]]:
    """Busy windows (start, end, job uid) per node or vlan; jobs without a start yet apart."""
    windows: dict[str, list[tuple[float, float, int]]] = {}
    unplaced: set[int] = set()
    for key, info in holders.items():
        for job in info.get("reservations") or []:
            if job.get("state") in GONE or (job.get("queue") == "besteffort" and not besteffort):
                continue
            start = job.get("started_at") or job.get("scheduled_at")
            if not start:
                unplaced.add(int(job.get("uid") or 0))
                continue
            end = max(float(start) + float(job.get("walltime") or 0), now + 1)  # past its walltime: still being killed
            windows.setdefault(key, []).append((float(start), end, int(job.get("uid") or 0)))
    return windows, unplaced


def _free(windows: list[tuple[float, float, int]], start: float, end: float) -> bool:
    return all(not (s < end and start < e) for s, e, _ in windows)


def earliest(status: dict[str, Any], demand: Demand) -> Forecast:
    """The first start at which the whole demand fits, from a site status body."""
    now = float(status.get("uid") or dt.datetime.now(dt.timezone.utc).timestamp())
    nodes: dict[str, Any] = status.get("nodes") or {}
    vlans: dict[str, Any] = status.get("vlans") or {}
    node_windows, unplaced = _windows(nodes, now, demand.besteffort)
    vlan_windows, vlan_unplaced = _windows(vlans, now, demand.besteffort)
    usable = sorted((n for n, info in nodes.items() if info.get("hard") in USABLE), key=node_order)

    forecast = Forecast(demand.site, now, None)
    known = dict(demand.evaluated)
    if any(g.properties and g.properties not in known for g in demand.groups):
        props = sorted({g.properties for g in demand.groups if g.properties and g.properties not in known})
        forecast.caveats.append(f"OAR properties ({'; '.join(props)}) not evaluated: this is the earliest for any node of the cluster")
    if unplaced | vlan_unplaced:
        forecast.caveats.append(f"{len(unplaced | vlan_unplaced)} queued job(s) not yet placed by OAR may come first")

    first = max(now, demand.not_before or now)
    ends = {e for ws in (*node_windows.values(), *vlan_windows.values()) for _, e, _ in ws if e > first}
    reason = ""
    for start in sorted({first, *ends}):
        end = start + demand.walltime
        reason = _fits(demand, usable, node_windows, vlans, vlan_windows, start, end)
        if not reason:
            forecast.start = start
            if start > first:
                holders = sorted({uid for ws in (*node_windows.values(), *vlan_windows.values()) for s, e, uid in ws if e == start})
                forecast.reason = f"held by job(s) {', '.join(map(str, holders[:8]))}{'…' if len(holders) > 8 else ''} until then"
            return forecast
    forecast.reason = reason  # even with every window over, it does not fit: the site lacks resources
    return forecast


def _fits(
    demand: Demand, usable: list[str], node_windows: dict, vlans: dict[str, Any], vlan_windows: dict, start: float, end: float
) -> str:
    """'' when every group and vlan is free during [start, end), else why not."""
    free = [n for n in usable if _free(node_windows.get(n, []), start, end)]
    taken: set[str] = set()
    # Named nodes first, then clusters, then any node (OAR's users order them so too).
    for group in sorted(demand.groups, key=lambda g: (not g.hosts, g.cluster is None)):
        if group.hosts:
            missing = [h for h in group.hosts if h not in free or h in taken]
            if missing:
                return f"node(s) {', '.join(h.split('.')[0] for h in missing)} not available"
            taken |= set(group.hosts)
            continue
        pool = [n for n in free if n not in taken and _matches(n, group, demand)]
        if len(pool) < group.count:
            where = f"cluster {group.cluster}" if group.cluster else "the site"
            total = len([n for n in usable if _matches(n, group, demand)])
            return f"{group.count} node(s) wanted on {where}, {total} usable" + ("" if total < group.count else f", {len(pool)} free")
        taken |= set(pool[: group.count])
    for vtype, count in demand.vlans:
        fitting = [v for v, info in vlans.items() if info.get("type") == vtype and info.get("hard", "alive") in USABLE]
        free_vlans = [v for v in fitting if _free(vlan_windows.get(v, []), start, end)]
        if len(free_vlans) < count:
            return f"{count} {vtype} vlan(s) wanted, {len(fitting)} on the site, {len(free_vlans)} free"
    return ""


def _matches(fqdn: str, group: Group, demand: Demand) -> bool:
    cluster = cluster_of(fqdn)
    if group.properties:
        having = dict(demand.evaluated).get(group.properties)
        if having is not None and fqdn not in having:
            return False
    if group.cluster:
        return cluster == group.cluster
    return demand.eligible_clusters is None or cluster in demand.eligible_clusters


def common_start(statuses: dict[str, dict[str, Any]], demands: list[Demand], lead: float = 0) -> tuple[Optional[float], list[Forecast]]:
    """One start for jobs on several sites (EnOSlib's way: every site at the latest site's
    earliest, until they agree), and each site's own earliest (which says what holds it).
    `lead`: the least delay a multi-site submission adds."""
    base = max(float(s.get("uid") or 0) for s in statuses.values()) + lead
    alone = [earliest(statuses[d.site], replace(d, not_before=max(base, d.not_before or 0))) for d in demands]
    known = [f.start for f in alone if f.start is not None]
    if len(known) < len(alone):
        return None, alone
    start = max(known)
    for _ in range(MAX_ROUNDS):
        found = [earliest(statuses[d.site], replace(d, not_before=max(start, d.not_before or 0))).start for d in demands]
        starts = [s for s in found if s is not None]
        if len(starts) < len(found):
            return None, alone
        latest = max(starts)
        if all(s == latest for s in starts):
            return latest, alone
        start = latest
    return None, alone


async def site_status(session: Session, site: str, with_vlans: bool) -> dict[str, Any]:
    """One GET of the site's status, without the parts a forecast does not read."""
    query = {"disks": "no", "subnets": "no"}
    if not with_vlans:
        query["vlans"] = "no"
    answer = await session.call(f"reading the status of {site}", session.site(site).status.list, **query)
    return answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)


async def fetch_statuses(session: Session, demands: list[Demand], seconds: float) -> Optional[dict[str, dict[str, Any]]]:
    """Every site's status, or None when the API does not answer in time (previews work offline)."""
    sites = sorted({d.site for d in demands})
    with_vlans = {s: any(d.vlans for d in demands if d.site == s) for s in sites}
    try:
        bodies = await asyncio.wait_for(asyncio.gather(*(site_status(session, s, with_vlans[s]) for s in sites)), seconds)
    except (asyncio.TimeoutError, G5kError, Cancelled):
        return None
    return dict(zip(sites, bodies))


def eligible_clusters(clusters: Optional[dict[str, dict[str, Any]]], queue: str, types: Iterable[str]) -> Optional[frozenset[str]]:
    """Clusters OAR may give a group without a cluster: those serving the queue (default or
    production; besteffort/testing/admin reach all), exotic ones only for an `exotic` job."""
    if not clusters:
        return None
    exotic = "exotic" in set(types)
    out = set()
    for uid, info in clusters.items():
        queues = info.get("queues") or ["default"]
        if queue in ("default", "production") and queue not in queues:
            continue
        if info.get("exotic") and not exotic:
            continue
        out.add(uid)
    return frozenset(out)


def kavlan_nics(node: dict[str, Any]) -> int:
    """OAR's `eth_kavlan_count` of a node from its reference description: its enabled Ethernet
    adapters that KaVLAN can move (the management one excluded)."""
    return sum(
        1
        for a in node.get("network_adapters") or []
        if a.get("kavlan") and a.get("interface", "Ethernet") == "Ethernet" and not a.get("management") and a.get("enabled", True)
    )


def _fqdn(node: dict[str, Any], site: str) -> str:
    uid = str(node.get("uid", ""))
    return uid if "." in uid else f"{uid}.{site}.grid5000.fr"


def paris(epoch: float) -> str:
    """A date the way OAR shows it (Paris local time)."""
    return oar_date(dt.datetime.fromtimestamp(epoch, dt.timezone.utc))


def delay_text(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def describe(forecast: Forecast, what: str) -> str:
    """One line for the preview: `what` could start now / at … / nowhere."""
    if forecast.start is None:
        text = f"{what} cannot be placed on {forecast.site} as the site is now ({forecast.reason})"
    elif forecast.immediate:
        text = f"{what} could start now on {forecast.site} (its clock: {paris(forecast.now)} Paris)"
    else:
        text = (
            f"{what} could start on {forecast.site} at {paris(forecast.start)} (Paris), in "
            f"{delay_text(forecast.start - forecast.now)}" + (f": {forecast.reason}" if forecast.reason else "")
        )
    if forecast.caveats:
        text += " [" + "; ".join(forecast.caveats) + "]"
    return text


async def forecast(
    settings: Any, demands: list[Demand], lead: float = 0, seconds: float = 10.0
) -> Optional[tuple[Optional[float], list[Forecast]]]:
    """The common earliest start of `demands` (one per site) and each site's forecast; None
    when the API cannot tell within `seconds` (a preview never waits long for a forecast)."""
    from .validation import CHECK_TIMEOUT

    session = Session(replace(settings, timeout=min(settings.timeout, CHECK_TIMEOUT)), attempts=1)
    try:
        statuses = await fetch_statuses(session, demands, seconds)
    finally:
        session.close()
    if statuses is None:
        return None
    if len(demands) == 1:
        one = earliest(statuses[demands[0].site], demands[0])
        return one.start, [one]
    return common_start(statuses, demands, lead)


async def reservation_forecast(settings: Any, spec: Any, lead: float) -> Optional[tuple[bool, str]]:
    """Preview of a Reservation on g5k: (is it a warning, the line to show), None when the API
    cannot tell. One deploy job per site, several sites share one start (see testbed.py)."""
    from .plan import SECONDARY_NIC, make_plan
    from .validation import CHECK_TIMEOUT, Reference, with_timeout
    from .vm_sizing import node_counts, vm_sizes

    ref = Reference(settings)
    try:
        plan = make_plan(
            spec, settings.site, node_counts(spec, await with_timeout(vm_sizes(ref, spec, settings.site), CHECK_TIMEOUT) or {})
        )
        demands = []
        for site in plan.sites:
            clusters = await with_timeout(ref.clusters(site.site), CHECK_TIMEOUT)
            request = site.request(spec)
            demand = demand_of(site.site, request, plan.walltime, eligible=eligible_clusters(clusters or None, "default", ["deploy"]))
            named = {g.cluster for g in request.nodes if g.properties == SECONDARY_NIC}
            wanted = {c for c in named if c is not None}
            if wanted and len(wanted) == len(named):  # the nodes of those clusters with two kavlan-capable NICs
                having: set[str] = set()
                for cluster in sorted(wanted):
                    nodes = await with_timeout(ref.cluster_nodes(site.site, cluster), CHECK_TIMEOUT)
                    if not nodes:
                        break
                    having |= {_fqdn(n, site.site) for n in nodes if kavlan_nics(n) > 1}
                else:
                    demand = replace(demand, evaluated=((SECONDARY_NIC, frozenset(having)),))
            demands.append(demand)
    finally:
        ref.close()
    found = await forecast(settings, demands, lead=lead if len(demands) > 1 else 0)
    if found is None:
        return None
    start, per_site = found
    nodes = sum(site.node_count(spec, g) for site in plan.sites for g in site.groups)
    vms = sum(m.count for m in spec.machines if m.kind == "vm")
    held = f"{nodes} node(s)" + (
        f", {vms} VM(s) on {sum(s.node_count(spec, g) for s in plan.sites for g in s.groups if spec.machines[g].kind == 'vm')} of them"
        if vms
        else ""
    )
    if len(per_site) == 1:
        return per_site[0].start is None, describe(per_site[0], f"the reservation ({held})")
    if start is None:
        stuck = next(f for f in per_site if f.start is None)
        return True, f"no common start for the reservation's sites: {describe(stuck, 'its job')}"
    now = max(f.now for f in per_site)
    parts = [f"{f.site}: " + (f.reason or "free") for f in per_site]
    caveats = sorted({c for f in per_site for c in f.caveats})
    text = (
        f"the reservation ({held} on {', '.join(f.site for f in per_site)}) could start on all its sites at "
        f"{paris(start)} (Paris), in {delay_text(start - now)} ({'; '.join(parts)})"
    )
    return False, text + (" [" + "; ".join(caveats) + "]" if caveats else "")
