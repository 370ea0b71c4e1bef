"""Names of everything a local reservation creates: prefix, namespaces, hosts, interfaces.

Every name is derived, so teardown can find things from the prefix alone. The prefix has the
form `tb-<slug>-<6 hex>-` where the slug never contains `-`: one prefix can therefore never be
the beginning of another reservation's prefix, and a sweep by prefix never touches a neighbour.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Optional

from ..base import ReservationSpec

PREFIX_START = "tb-"
SLUG_MAX = 12
SWITCH_SUFFIX = "sw"  # host names always end in `-<n>`, so they never equal this
HOSTNAME_MAX = 63  # one DNS label; also what `hostname` accepts
PREFIX_RE = re.compile(r"^tb-[a-z0-9_]{1,12}-[0-9a-f]{6}-$")


def slug(name: str) -> str:
    """A short, namespace-safe form of the stack's reservation name (`-` and other marks become `_`)."""
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:SLUG_MAX].strip("_")
    return text or "r"


def new_prefix(name: str) -> str:
    """A fresh per-reservation prefix; the random part keeps two stacks with one name apart."""
    return f"{PREFIX_START}{slug(name)}-{secrets.token_hex(3)}-"


def reservation_id(prefix: str) -> str:
    return prefix.rstrip("-")


def switch_namespace(prefix: str) -> str:
    return prefix + SWITCH_SUFFIX


def host_namespace(prefix: str, host: str) -> str:
    return prefix + host


def host_base_name(role: str) -> str:
    """`db_primary` → `db-primary`: roles are Ansible group names, host names are DNS labels."""
    return role.replace("_", "-")


def interface(network_index: Optional[int]) -> str:
    """The device inside a host: `eth0` for management, `eth{k+1}` for experiment network k."""
    return "eth0" if network_index is None else f"eth{network_index + 1}"


def switch_port(slot: int, network_index: Optional[int]) -> str:
    """The switch-side end of a host's veth: `v<slot>-<port>` (at most 11 characters, unique in
    the switch namespace because `slot` is the host's management address offset)."""
    port = 0 if network_index is None else network_index + 1
    return f"v{slot}-{port}"


def bridge(network_index: Optional[int]) -> str:
    """Bridges in the switch namespace: `br0` management, `br{k+1}` experiment network k."""
    return "br0" if network_index is None else f"br{network_index + 1}"


@dataclass(frozen=True)
class PlannedHost:
    """One desired host: its name, roles, machine group and the experiment networks it joins."""

    name: str
    roles: tuple[str, ...]
    group: int
    networks: tuple[int, ...]  # indexes into spec.networks


def joins(roles: tuple[str, ...] | list[str], network_roles: Optional[list[str]]) -> bool:
    return network_roles is None or bool(set(roles) & set(network_roles))


def plan_hosts(spec: ReservationSpec) -> list[PlannedHost]:
    """Hosts in spec order: `<first role>-<n>`, n counting from 1 per first role across groups."""
    counters: dict[str, int] = {}
    hosts: list[PlannedHost] = []
    for g, group in enumerate(spec.machines):
        base = host_base_name(group.roles[0])
        roles = tuple(group.roles)
        nets = tuple(k for k, net in enumerate(spec.networks) if joins(roles, net.roles))
        for _ in range(group.count):
            counters[base] = counters.get(base, 0) + 1
            hosts.append(PlannedHost(f"{base}-{counters[base]}", roles, g, nets))
    return hosts
