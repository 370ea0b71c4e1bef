"""VMs on Grid'5000 the way EnOSlib's VMonG5k places them (pure helpers, unit-tested).

A `kind: vm` group takes physical nodes and a `slash_22` subnet per site: the node count comes
from the VMs' cores and memory against a node's threads and memory (minus a reserve for the
hypervisor), each VM gets a subnet address whose MAC the site's DHCP maps to it
(`00:16:3e:XX:YY:ZZ`, hex of the last three octets), and VMs spread round-robin over the nodes.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Iterator, Optional, TypeVar

from ..base import ReservationSpec

T = TypeVar("T")

RESERVE_FRACTION = 0.02  # VMonG5k keeps 2 % of a node's RAM for the hypervisor…
RESERVE_MIN_MB = 256  # …at least 256 MB…
RESERVE_MAX_MB = 4096  # …and at most 4 GB
MAC_PREFIX = "00:16:3e"  # Xen's OUI, which VMonG5k (and Grid'5000's DHCP) use for subnet addresses


def reserve_mb(node_memory_mb: int) -> int:
    """Memory a node keeps for itself: 2 % of its RAM, clamped to [256 MB, 4 GB]."""
    return min(RESERVE_MAX_MB, max(RESERVE_MIN_MB, int(node_memory_mb * RESERVE_FRACTION)))


def physical_nodes(count: int, cores: int, memory_mb: int, node_threads: int, node_memory_mb: int) -> int:
    """How many nodes `count` VMs of `cores`/`memory_mb` take (VMonG5k's formula): enough for
    both their vCPUs and their memory, never more nodes than VMs."""
    if count <= 0:
        return 0
    usable = node_memory_mb - reserve_mb(node_memory_mb)
    if node_threads <= 0 or usable <= 0:
        raise ValueError(f"a node with {node_threads} threads and {node_memory_mb} MB cannot host VMs")
    by_cpu = math.ceil(count * cores / node_threads)
    by_mem = math.ceil(count * memory_mb / usable)
    return min(count, max(by_cpu, by_mem, 1))


def mac_for(address: str) -> str:
    """The MAC whose DHCP lease is `address` on Grid'5000: 00:16:3e + hex of octets 2-4."""
    octets = ipaddress.IPv4Address(address).packed
    return MAC_PREFIX + "".join(f":{b:02x}" for b in octets[1:])


def address_for(mac: str) -> str:
    """The inverse of mac_for, given the subnet's first octet is what the MAC cannot carry: only
    the last three octets; raises ValueError for a MAC outside the scheme."""
    parts = mac.lower().split(":")
    if len(parts) != 6 or ":".join(parts[:3]) != MAC_PREFIX:
        raise ValueError(f"{mac} is not a VMonG5k subnet MAC ({MAC_PREFIX}:…)")
    return ".".join(str(int(p, 16)) for p in parts[3:])


def subnet_addresses(subnet: str, gateway: Optional[str] = None) -> Iterator[str]:
    """A subnet's VM addresses in order: its hosts, without the site's subnet gateway when it
    falls inside (on Grid'5000 a /22 is a slice of the site's larger g5ksubnet)."""
    for ip in ipaddress.IPv4Network(subnet, strict=False).hosts():
        if str(ip) != gateway:
            yield str(ip)


def round_robin(items: list[T], nodes: list[str]) -> list[tuple[T, str]]:
    """Each item with the node that runs it: the first on the first node, the second on the
    second, wrapping around (VMonG5k's placement)."""
    if not nodes and items:
        raise ValueError("no node to place VMs on")
    return [(item, nodes[i % len(nodes)]) for i, item in enumerate(items)]


@dataclass(frozen=True)
class PlannedVm:
    """One VM of a `kind: vm` group: its name, the node that runs it, its subnet address and MAC."""

    name: str
    group: int
    site: str
    node: str  # the node's FQDN
    address: str
    mac: str


def plan_vms(spec: ReservationSpec, nodes: dict[int, list[str]], sites: dict[int, str], subnets: dict[str, list[str]]) -> list[PlannedVm]:
    """The VMs of every `kind: vm` group in spec order: named `<first role>-<n>` as on the local
    testbed (n counting per first role over the VM groups), placed round-robin on the group's
    nodes, given the next free address of their site's subnet (`subnets`: site → addresses)."""
    counters: dict[str, int] = {}
    free = {site: iter(addresses) for site, addresses in subnets.items()}
    out = []
    for g, group in enumerate(spec.machines):
        if group.kind != "vm":
            continue
        base = group.roles[0].replace("_", "-")  # roles are Ansible group names, host names DNS labels
        names = []
        for _ in range(group.count):
            counters[base] = counters.get(base, 0) + 1
            names.append(f"{base}-{counters[base]}")
        for name, node in round_robin(names, nodes.get(g, [])):
            address = next(free[sites[g]], None)
            if address is None:
                raise ValueError(f"the subnet of {sites[g]} has no address left for {name}")
            out.append(PlannedVm(name, g, sites[g], node, address, mac_for(address)))
    return out
