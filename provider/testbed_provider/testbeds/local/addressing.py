"""Address plan: management network, experiment networks, lowest-free allocation.

Everything lives in private ranges used only inside our namespaces: experiment networks in
198.18.0.0/16 and the management network in 198.19.0.0/16 (together RFC 2544's benchmarking
block 198.18.0.0/15). Nothing is ever routed, so two reservations may reuse the same addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, Iterator, Optional

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

MANAGEMENT = IPv4Network("198.19.0.0/16")
MANAGEMENT_SWITCH = IPv4Address("198.19.255.254")  # the switch namespace's access point
EXPERIMENT_RANGE = IPv4Network("198.18.0.0/16")
MAX_DEFAULT_NETWORKS = 256  # default cidrs are 198.18.{k}.0/24


def default_cidr(index: int) -> Optional[IPv4Network]:
    """Network k's cidr when the spec gives none, or None when k has no default (k > 255)."""
    if index >= MAX_DEFAULT_NETWORKS:
        return None
    return IPv4Network(f"198.18.{index}.0/24")


def parse_cidr(cidr: Optional[str], index: int) -> Optional[IPv4Network]:
    """The network's cidr (explicit or default), or None if malformed / not IPv4."""
    if cidr is None:
        return default_cidr(index)
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except (ValueError, TypeError):
        return None
    return net if isinstance(net, IPv4Network) else None


def capacity(net: IPv4Network) -> int:
    """How many host addresses `net` offers (/31 and /32 have no network/broadcast address)."""
    return net.num_addresses if net.prefixlen >= 31 else net.num_addresses - 2


def _candidates(net: IPv4Network) -> Iterator[IPv4Address]:
    return iter(net) if net.prefixlen >= 31 else net.hosts()


def allocate(net: IPv4Network, count: int, used: Iterable[str], reserved: Iterable[IPv4Address] = ()) -> list[str]:
    """`count` lowest free host addresses of `net`, skipping `used` and `reserved`.

    Lowest-free keeps addresses stable and predictable across reconcile: a new host fills the
    gap left by a removed one instead of drifting upwards.
    """
    taken = {IPv4Address(a) for a in used} | set(reserved)
    out: list[str] = []
    if count <= 0:
        return out
    for addr in _candidates(net):
        if addr not in taken:
            out.append(str(addr))
            if len(out) == count:
                return out
    raise ValueError(f"{net} has no room for {count} more host(s)")


def allocate_management(count: int, used: Iterable[str]) -> list[str]:
    return allocate(MANAGEMENT, count, used, reserved=(MANAGEMENT_SWITCH,))


def slot(management_address: str) -> int:
    """A host's small stable number (its offset in the management network), used in port names."""
    return int(IPv4Address(management_address)) - int(MANAGEMENT.network_address)
