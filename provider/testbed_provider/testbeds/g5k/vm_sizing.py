"""How many of a cluster's nodes a `kind: vm` group takes, from the reference API.

VMonG5k sizes by the node's threads and memory (`vms.physical_nodes`); the reference API gives
both per node (`architecture.nb_threads`, `main_memory.ram_size`). A cluster's nodes are alike,
so its smallest node decides. Unknown sizes (the API did not answer) leave the group out: a
preview then counts one node per VM, and reserve refuses to guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ...common.results import CheckFailure
from ..base import ReservationSpec
from .plan import placed_site
from .validation import Reference
from .vms import physical_nodes, reserve_mb


@dataclass(frozen=True)
class NodeSize:
    threads: int
    memory_mb: int


def node_size(nodes: list[dict[str, Any]]) -> Optional[NodeSize]:
    """The smallest of the cluster's nodes (threads and memory taken separately)."""
    sizes = [
        NodeSize(int((n.get("architecture") or {}).get("nb_threads") or 0), int((n.get("main_memory") or {}).get("ram_size") or 0) >> 20)
        for n in nodes
    ]
    sizes = [s for s in sizes if s.threads > 0 and s.memory_mb > 0]
    if not sizes:
        return None
    return NodeSize(min(s.threads for s in sizes), min(s.memory_mb for s in sizes))


async def vm_sizes(ref: Reference, spec: ReservationSpec, default_site: Optional[str]) -> dict[int, NodeSize]:
    """Each VM group's node size, for the groups whose cluster the reference API describes."""
    out: dict[int, NodeSize] = {}
    for g, group in enumerate(spec.machines):
        cluster = group.options.get("cluster")
        if group.kind != "vm" or not cluster:
            continue
        nodes = await ref.cluster_nodes(placed_site(group.options, default_site), cluster)
        size = node_size(nodes) if nodes else None
        if size is not None:
            out[g] = size
    return out


def node_counts(spec: ReservationSpec, sizes: dict[int, NodeSize]) -> dict[int, int]:
    """Group → how many nodes its VMs take (VMonG5k's formula), for the groups sized."""
    out = {}
    for g, size in sizes.items():
        vm = spec.machines[g].vm
        cores, memory = (vm.cores, vm.memory_mb) if vm else (1, 512)
        out[g] = physical_nodes(spec.machines[g].count, cores, memory, size.threads, size.memory_mb)
    return out


def too_big(spec: ReservationSpec, sizes: dict[int, NodeSize]) -> list[CheckFailure]:
    """A VM larger than one node of its cluster can hold, naming the property that sized it."""
    failures = []
    for g, size in sizes.items():
        vm, cluster = spec.machines[g].vm, spec.machines[g].options.get("cluster")
        if vm is None:
            continue
        usable = size.memory_mb - reserve_mb(size.memory_mb)
        what = f"flavour `{vm.flavour}` ({vm.cores} core(s), {vm.memory_mb} MB)" if vm.flavour else None
        if vm.cores > size.threads:
            failures.append(
                CheckFailure(
                    f"machines[{g}].{'flavour' if vm.flavour else 'cores'}",
                    f"{what or f'{vm.cores} cores'} per VM, but a node of {cluster} has {size.threads} threads",
                )
            )
        if vm.memory_mb > usable:
            failures.append(
                CheckFailure(
                    f"machines[{g}].{'flavour' if vm.flavour else 'memoryMb'}",
                    f"{what or f'{vm.memory_mb} MB'} per VM, but a node of {cluster} can give VMs {usable} MB "
                    f"({size.memory_mb} MB minus {reserve_mb(size.memory_mb)} MB kept for itself)",
                )
            )
    return failures
