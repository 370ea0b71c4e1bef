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

A `kind: vm` group (VMs à la EnOSlib's VMonG5k) needs a `cluster`: its job asks for as many of that
cluster's nodes as the VMs' cores and memory take (`vm_nodes`, from the reference API; see
`vms.physical_nodes`) and its site's job for a `slash_22` subnet, whose addresses the VMs get.
VMs are on their site's production network only (routed between sites): a network of VM groups
only is their subnet addresses, with no vlan; a network may not mix VMs and nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ...common.results import CheckFailure
from ..base import NetworkSpec, ReservationSpec
from .oar import SITE_RE, NodeGroup, OarError, ResourceRequest, VlanRequest, parse_walltime, resources_string

OPTIONS = {"site", "cluster", "walltime", "environment"}
DEFAULT_WALLTIME = "1:00:00"
DEFAULT_ENVIRONMENT = "debian12-min"
MAX_ROUTED_VLANS = 6  # kavlan 4-9 per site
# OAR property of Grid'5000 nodes: how many interfaces KaVLAN can move; a network needs a second one.
SECONDARY_NIC = "eth_kavlan_count > 1"
MAX_VMS_PER_SITE = 1021  # a /22's host addresses, less one in case the site's subnet gateway is among them


@dataclass
class SitePlan:
    site: str
    groups: list[int] = field(default_factory=list)  # machine group indexes, in spec order
    networks: list[str] = field(default_factory=list)  # network ids given a vlan of this site
    secondary: set[int] = field(default_factory=set)  # groups whose nodes need a kavlan-capable second NIC
    global_network: Optional[str] = None  # the multi-site network homed here (its kavlan-global vlan)
    nodes: dict[int, int] = field(default_factory=dict)  # group → how many nodes it takes (a VM group's hypervisors)

    def node_count(self, spec: ReservationSpec, g: int) -> int:
        return self.nodes.get(g, spec.machines[g].count)

    def has_vms(self, spec: ReservationSpec) -> bool:
        return any(spec.machines[g].kind == "vm" for g in self.groups)

    def request(self, spec: ReservationSpec) -> ResourceRequest:
        nodes = [
            NodeGroup(
                self.node_count(spec, g),
                cluster=spec.machines[g].options.get("cluster"),
                properties=SECONDARY_NIC if g in self.secondary else None,
            )
            for g in self.groups
        ]
        vlan = VlanRequest("kavlan", len(self.networks)) if self.networks else None
        extra = (VlanRequest("kavlan-global", 1),) if self.global_network is not None else ()
        subnets = {"slash_22": 1} if self.has_vms(spec) else {}
        return ResourceRequest(nodes=nodes, vlan=vlan, extra_vlans=extra, subnets=subnets)


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
        if group.kind == "vm" and not group.options.get("cluster"):
            fail(
                f"machines[{g}].cluster",
                "required for `kind: vm` on g5k: how many nodes the VMs take comes from that cluster's threads and memory",
            )
        if group.kind == "vm" and group.vm is not None and group.vm.image:
            from ...hosts.vm.machine import image_problem

            problem = image_problem(group.vm.image)
            if problem:
                fail(f"machines[{g}].image", problem)
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
    vms_per_site: dict[str, int] = {}
    for g, group in enumerate(spec.machines):
        site = group_site(group.options, default_site)
        if group.kind == "vm" and isinstance(site, str):
            vms_per_site[site] = vms_per_site.get(site, 0) + group.count
            if vms_per_site[site] > MAX_VMS_PER_SITE:
                fail(f"machines[{g}].count", f"more than {MAX_VMS_PER_SITE} VMs on {site}: its slash_22 subnet has no more addresses")
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
        kinds = {spec.machines[g].kind == "vm" for g in groups}
        if kinds == {True, False}:
            vm = next(g for g in groups if spec.machines[g].kind == "vm")
            fail(
                f"networks[{k}].roles",
                f"joins VMs (machines[{vm}]) and nodes: on g5k VMs are on their site's production network "
                f"(subnet addresses), nodes on a KaVLAN; a network joins only VMs or only nodes",
            )
        if kinds == {True}:
            continue  # the VMs' own subnet addresses: no vlan
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


def make_plan(spec: ReservationSpec, default_site: Optional[str], vm_nodes: Optional[dict[int, int]] = None) -> Plan:
    """Assumes validate() passed. `vm_nodes`: the node count of each VM group (by default one
    node per VM, the most VMonG5k's formula gives)."""
    sites: dict[str, SitePlan] = {}
    walltime = parse_walltime(DEFAULT_WALLTIME)
    environments = {}
    for g, group in enumerate(spec.machines):
        site = placed_site(group.options, default_site)
        sites.setdefault(site, SitePlan(site)).groups.append(g)
        if group.kind == "vm":
            sites[site].nodes[g] = (vm_nodes or {}).get(g, group.count)
        if "walltime" in group.options:
            walltime = parse_walltime(group.options["walltime"])
        environments[g] = group.options.get("environment") or DEFAULT_ENVIRONMENT
    for net in spec.networks:
        groups = members(spec, net.roles)
        if groups and not vm_network(spec, net):
            site = placed_site(spec.machines[groups[0]].options, default_site)
            if len({placed_site(spec.machines[g].options, default_site) for g in groups}) > 1:
                sites[site].global_network = net.id
            else:
                sites[site].networks.append(net.id)
            for g in groups:
                sites[placed_site(spec.machines[g].options, default_site)].secondary.add(g)
    return Plan(list(sites.values()), walltime, environments)


def vm_network(spec: ReservationSpec, net: NetworkSpec) -> bool:
    """A network of VM groups only: their subnet addresses on the production network."""
    groups = members(spec, net.roles)
    return bool(groups) and all(spec.machines[g].kind == "vm" for g in groups)


def split_nodes(spec: ReservationSpec, site: SitePlan, assigned: list[str]) -> dict[int, list[str]]:
    """Which assigned node serves which machine group: groups with a cluster take nodes of that
    cluster first, the others take what is left (OAR does not say which group a node came from)."""
    from .naming import cluster_of, node_order

    left = sorted(assigned, key=node_order)
    out: dict[int, list[str]] = {}
    for g in sorted(site.groups, key=lambda g: spec.machines[g].options.get("cluster") is None):
        cluster = spec.machines[g].options.get("cluster")
        mine = [n for n in left if cluster is None or cluster_of(n) == cluster][: site.node_count(spec, g)]
        out[g] = mine
        left = [n for n in left if n not in mine]
    return out
