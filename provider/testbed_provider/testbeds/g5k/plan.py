"""Reservation → Grid'5000 plan (pure): one OAR job per site, vlans for experiment networks.

Machine-group options on g5k: `site` (default: `testbed:g5kSite`), `cluster`, `walltime`
(one value per reservation, default 1:00:00) and `environment` (Kadeploy image, default
debian12-min). An experiment network whose machines are on one site becomes a routed KaVLAN
(`kavlan`, ids 4-9) of that site. A network whose machines span several sites becomes a
kavlan-global VLAN (ids >= 10, one per site, L2 across sites): its home site is the site of its
first member group, whose job requests `{type='kavlan-global'}/vlan=1` besides its routed vlans
(so at most one such network per home site). Every member group, on every site, asks OAR for
nodes with a kavlan-capable secondary NIC. A network's addressing is the vlan's, so `cidr`
cannot be chosen here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ...common.results import CheckFailure
from ..base import ReservationSpec
from .oar import SITE_RE, NodeGroup, OarError, ResourceRequest, VlanRequest, parse_walltime, resources_string

OPTIONS = {"site", "cluster", "walltime", "environment"}
DEFAULT_WALLTIME = "1:00:00"
DEFAULT_ENVIRONMENT = "debian12-min"
MAX_ROUTED_VLANS = 6  # kavlan 4-9 per site
# OAR property of Grid'5000 nodes: how many interfaces KaVLAN can move; a network needs a second one.
SECONDARY_NIC = "eth_kavlan_count > 1"


@dataclass
class SitePlan:
    site: str
    groups: list[int] = field(default_factory=list)  # machine group indexes, in spec order
    networks: list[str] = field(default_factory=list)  # network ids given a vlan of this site
    secondary: set[int] = field(default_factory=set)  # groups whose nodes need a kavlan-capable second NIC
    global_network: Optional[str] = None  # the multi-site network homed here (its kavlan-global vlan)

    def request(self, spec: ReservationSpec) -> ResourceRequest:
        nodes = [
            NodeGroup(
                spec.machines[g].count,
                cluster=spec.machines[g].options.get("cluster"),
                properties=SECONDARY_NIC if g in self.secondary else None,
            )
            for g in self.groups
        ]
        vlan = VlanRequest("kavlan", len(self.networks)) if self.networks else None
        extra = (VlanRequest("kavlan-global", 1),) if self.global_network is not None else ()
        return ResourceRequest(nodes=nodes, vlan=vlan, extra_vlans=extra)


@dataclass
class Plan:
    sites: list[SitePlan]
    walltime: int
    environments: dict[int, str]  # group → environment

    def resources(self, spec: ReservationSpec, site: SitePlan) -> str:
        return resources_string(site.request(spec), self.walltime)


def group_site(options: dict[str, Any], default_site: Optional[str]) -> Optional[str]:
    return options.get("site") or default_site


def placed_site(options: dict[str, Any], default_site: Optional[str]) -> str:
    """A group's site once validate() passed (it refuses a group without one)."""
    site = group_site(options, default_site)
    if site is None:
        raise ValueError("a machine group has no site (validate() should have refused it)")
    return site


def members(spec: ReservationSpec, roles: Optional[list[str]]) -> list[int]:
    """Machine groups joining a network (all of them when roles is None)."""
    return [g for g, m in enumerate(spec.machines) if roles is None or set(m.roles) & set(roles)]


def validate(spec: ReservationSpec, default_site: Optional[str]) -> list[CheckFailure]:
    failures: list[CheckFailure] = []
    fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
    walltimes: dict[int, int] = {}
    for g, group in enumerate(spec.machines):
        if group.kind == "vm":
            fail(f"machines[{g}].kind", "`vm` machines are not yet supported on g5k (use `host`: Grid'5000 nodes)")
        for key in sorted(set(group.options) - OPTIONS):
            fail(f"machines[{g}].{key}", f"`{key}` is not a g5k option (the g5k backend accepts {', '.join(sorted(OPTIONS))})")
        site = group_site(group.options, default_site)
        if site is None:
            fail(f"machines[{g}].site", "required on the g5k backend (or set `testbed:g5kSite` for every group)")
        elif not isinstance(site, str) or not SITE_RE.match(site):
            fail(f"machines[{g}].site", f"`{site}` is not a Grid'5000 site name")
        for key in ("cluster", "environment"):
            value = group.options.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                fail(f"machines[{g}].{key}", "must be a non-empty string")
        if "walltime" in group.options:
            try:
                walltimes[g] = parse_walltime(group.options["walltime"], f"machines[{g}].walltime")
            except OarError as err:
                fail(err.property, str(err))
    if len(set(walltimes.values())) > 1:
        first = min(walltimes)
        for g, w in walltimes.items():
            if w != walltimes[first]:
                fail(f"machines[{g}].walltime", f"differs from machines[{first}].walltime: a reservation has one walltime")
    per_site: dict[str, int] = {}
    global_home: dict[str, int] = {}  # home site → index of the multi-site network homed there
    for k, net in enumerate(spec.networks):
        if net.cidr is not None:
            fail(f"networks[{k}].cidr", "on g5k a network is a KaVLAN whose addressing Grid'5000 fixes; omit `cidr`")
        groups = members(spec, net.roles)
        sites = {s for g in groups if (s := group_site(spec.machines[g].options, default_site)) is not None}
        if len(sites) > 1:
            home = group_site(spec.machines[groups[0]].options, default_site) or ""
            if home in global_home:
                fail(
                    f"networks[{k}]",
                    f"spans several sites ({', '.join(sorted(sites))}) from home site {home}, like "
                    f"networks[{global_home[home]}]: a site has one kavlan-global VLAN; give it "
                    f"another first member group's site",
                )
            else:
                global_home[home] = k
            continue
        for s in sites:
            per_site[s] = per_site.get(s, 0) + 1
            if per_site[s] > MAX_ROUTED_VLANS:
                fail(f"networks[{k}]", f"more than {MAX_ROUTED_VLANS} networks on site {s} (routed KaVLANs 4-9)")
    return failures


def make_plan(spec: ReservationSpec, default_site: Optional[str]) -> Plan:
    """Assumes validate() passed."""
    sites: dict[str, SitePlan] = {}
    walltime = parse_walltime(DEFAULT_WALLTIME)
    environments = {}
    for g, group in enumerate(spec.machines):
        site = placed_site(group.options, default_site)
        sites.setdefault(site, SitePlan(site)).groups.append(g)
        if "walltime" in group.options:
            walltime = parse_walltime(group.options["walltime"])
        environments[g] = group.options.get("environment") or DEFAULT_ENVIRONMENT
    for net in spec.networks:
        groups = members(spec, net.roles)
        if groups:
            site = placed_site(spec.machines[groups[0]].options, default_site)
            if len({placed_site(spec.machines[g].options, default_site) for g in groups}) > 1:
                sites[site].global_network = net.id
            else:
                sites[site].networks.append(net.id)
            for g in groups:
                sites[placed_site(spec.machines[g].options, default_site)].secondary.add(g)
    return Plan(list(sites.values()), walltime, environments)


def split_nodes(spec: ReservationSpec, site: SitePlan, assigned: list[str]) -> dict[int, list[str]]:
    """Which assigned node serves which machine group: groups with a cluster take nodes of that
    cluster first, the others take what is left (OAR does not say which group a node came from)."""
    from .naming import cluster_of, node_order

    left = sorted(assigned, key=node_order)
    out: dict[int, list[str]] = {}
    for g in sorted(site.groups, key=lambda g: spec.machines[g].options.get("cluster") is None):
        cluster = spec.machines[g].options.get("cluster")
        mine = [n for n in left if cluster is None or cluster_of(n) == cluster][: spec.machines[g].count]
        out[g] = mine
        left = [n for n in left if n not in mine]
    return out
