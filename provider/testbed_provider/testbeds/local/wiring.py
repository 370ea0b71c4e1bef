"""The local testbed's wiring: its switch's bridges and each host's interfaces on them.

Names and addresses are this backend's own (naming.py, addressing.py): in the switch namespace
br0 (management, holding the access address) and br{k+1} per experiment network k; in a host,
eth0 on br0 and eth{k+1} on br{k+1}, with switch ports `v<slot>-<port>`. The veth pairs
themselves are made by the host toolkit (`hosts.netns.add_links`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from ...hosts.commands import run
from ...hosts.netns import Link, add_links
from .addressing import MANAGEMENT, MANAGEMENT_SWITCH
from .naming import bridge, interface, switch_port


@dataclass
class HostWiring:
    """What one host's namespace needs: its management address and its experiment addresses."""

    namespace: str
    slot: int
    address: str
    experiment: list[tuple[int, str, int]] = field(default_factory=list)  # (network index, address, prefix length)


def mac_for(address: str) -> str:
    """A locally administered MAC derived from the interface's IPv4 address (02:74:<4 bytes>).

    A host recreated with an address it (or another host) had before gets the same MAC again,
    so neighbour caches in the switch and in the other hosts are never stale: without this, a
    repaired host stays unreachable until their ARP entries expire (measured: ~25 s).
    """
    return "02:74:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


async def setup_switch(switch: str, networks: int, cancelled: Optional[asyncio.Event]) -> None:
    """The switch namespace's bridges: br0 (management, holding the access address) and one per
    experiment network. STP stays off, so ports forward at once."""
    lines = [
        "link set lo up",
        "link add br0 type bridge",
        f"addr add {MANAGEMENT_SWITCH}/{MANAGEMENT.prefixlen} dev br0",
        "link set br0 up",
    ]
    for k in range(networks):
        lines += [f"link add {bridge(k)} type bridge", f"link set {bridge(k)} up"]
    await run(
        ["ip", "-n", switch, "-batch", "-"],
        input="\n".join(lines) + "\n",
        what=f"setting up the bridges in switch namespace {switch}",
        cancelled=cancelled,
    )


def links_of(h: HostWiring) -> list[Link]:
    """The host's veth pairs: eth0 on the management bridge, eth{k+1} on experiment network k's."""
    wanted: list[tuple[Optional[int], str, int]] = [(None, h.address, MANAGEMENT.prefixlen), *h.experiment]
    return [
        Link(h.namespace, interface(k), switch_port(h.slot, k), bridge(k), mac_for(address), f"{address}/{prefixlen}")
        for k, address, prefixlen in wanted
    ]


async def wire_hosts(
    switch: str, hosts: list[HostWiring], cancelled: Optional[asyncio.Event], limit: asyncio.Semaphore, replace_stale: bool = False
) -> None:
    """veth pairs (host end `eth0`/`eth{k+1}`, switch end `v<slot>-<port>`), bridge ports, addresses."""
    links = [link for h in hosts for link in links_of(h)]
    if not links:
        return
    if replace_stale:
        # A port of a host deleted moments ago may outlive its namespace briefly (namespaces are
        # freed asynchronously); its name is about to be reused, so remove it now if present.
        await run(
            ["ip", "-force", "-n", switch, "-batch", "-"],
            input="".join(f"link del {link.port}\n" for link in links),
            what="removing stale switch ports",
            cancelled=cancelled,
            check=False,
        )
    await add_links(switch, links, cancelled, limit)
