"""The emulated cloud's state: configuration, and every object the APIs create (tokens,
leases, servers, keypairs, ports, floating IPs, security groups), kept in memory and written
through to the state file, so a restarted emulator with the same `--state` resumes them."""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from g5k_emulator.clock import Clock
from g5k_emulator.store import Store

from . import inventory
from .timefmt import iso_z

KINDS = ("token", "lease", "server", "keypair", "port", "fip", "secgroup")


@dataclass
class User:
    name: str
    password: str

    @property
    def id(self) -> str:
        return inventory.stable_id("user", self.name)


@dataclass
class AppCredential:
    id: str
    secret: str
    name: str
    user: str  # the owning user's name


@dataclass
class Config:
    region: str = "CHI@UC"
    project: str = "CHI-000000"
    domain: str = "Default"
    users: list[User] = field(default_factory=lambda: [User("alice", "chameleon")])
    app_credentials: list[AppCredential] = field(
        default_factory=lambda: [AppCredential("emulator-app-cred", "emulator-secret", "emulator", "alice")]
    )
    token_lifetime: float = 86400.0
    boot_seconds: float = 600.0
    lease_start_seconds: float = 60.0
    node_types: dict[str, int] = field(default_factory=lambda: dict(inventory.DEFAULT_NODE_TYPES))

    @property
    def project_id(self) -> str:
        return inventory.stable_id("project", self.project)


def parse_user(spec: str) -> User:
    name, sep, password = spec.partition(":")
    if not name or not sep or not password:
        raise ValueError(f"a user is NAME:PASSWORD, got {spec!r}")
    return User(name, password)


def parse_app_credential(spec: str, default_user: str) -> AppCredential:
    """`ID:SECRET[:NAME[:USER]]`."""
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0] or not parts[1] or len(parts) > 4:
        raise ValueError(f"an application credential is ID:SECRET[:NAME[:USER]], got {spec!r}")
    name = parts[2] if len(parts) > 2 and parts[2] else parts[0]
    user = parts[3] if len(parts) > 3 and parts[3] else default_user
    return AppCredential(parts[0], parts[1], name, user)


def new_id() -> str:
    return str(uuid.uuid4())


def mac_address() -> str:
    """Neutron's default base MAC is fa:16:3e:…"""
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


class Cloud:
    """All objects by kind and id. Changes go through `save`/`drop`, which write through."""

    def __init__(self, config: Config, store: Store, clock: Clock):
        self.config = config
        self.store = store
        self.clock = clock
        self.hosts = inventory.build_hosts(config.node_types, config.region)
        self.images = inventory.build_images()
        self.flavors = inventory.build_flavors()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: store.load(kind) for kind in KINDS}
        self.networks, self.subnets = self._networks()
        self.default_secgroup()
        # Hooks set by the real-host layer (none without --hosts).
        self.on_server_boot: Optional[Callable[[dict[str, Any]], None]] = None
        self.on_server_gone: Optional[Callable[[dict[str, Any]], None]] = None
        self.on_fip_change: Optional[Callable[[dict[str, Any]], None]] = None

    # ---- storage -----------------------------------------------------------------------------

    def all(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.objects[kind]

    def save(self, kind: str, obj: dict[str, Any]) -> None:
        self.objects[kind][obj["id"]] = obj
        self.store.put(kind, obj["id"], obj)

    def drop(self, kind: str, oid: str) -> Optional[dict[str, Any]]:
        self.store.delete(kind, oid)
        return self.objects[kind].pop(oid, None)

    def now(self) -> float:
        return self.clock.now()

    # ---- networks ----------------------------------------------------------------------------

    def _networks(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        region = self.config.region
        admin = inventory.stable_id("project", "chameleon-admin")
        nets: dict[str, dict[str, Any]] = {}
        subnets: dict[str, dict[str, Any]] = {}
        for name, cidr, gateway, external in (
            (inventory.SHARED_NET, inventory.SHARED_CIDR, inventory.SHARED_GATEWAY, False),
            (inventory.PUBLIC_NET, inventory.PUBLIC_CIDR, inventory.PUBLIC_GATEWAY, True),
        ):
            nid = inventory.stable_id("network", region, name)
            sid = inventory.stable_id("subnet", region, name)
            hosts = list(cidr.hosts())
            subnets[sid] = {
                "id": sid,
                "name": f"{name}-subnet",
                "network_id": nid,
                "tenant_id": admin,
                "project_id": admin,
                "ip_version": 4,
                "cidr": str(cidr),
                "gateway_ip": str(gateway),
                "enable_dhcp": not external,
                "dns_nameservers": [] if external else ["8.8.8.8"],
                "allocation_pools": [{"start": str(hosts[9]), "end": str(hosts[-3])}],
                "host_routes": [],
                "ipv6_address_mode": None,
                "ipv6_ra_mode": None,
                "subnetpool_id": None,
                "description": "",
                "tags": [],
                "created_at": inventory.CREATED,
                "updated_at": inventory.CREATED,
                "revision_number": 0,
            }
            nets[nid] = {
                "id": nid,
                "name": name,
                "status": "ACTIVE",
                "admin_state_up": True,
                "shared": not external,
                "router:external": external,
                "subnets": [sid],
                "tenant_id": admin,
                "project_id": admin,
                "mtu": 1500,
                "port_security_enabled": True,
                "provider:network_type": "flat" if external else "vlan",
                "availability_zone_hints": [],
                "availability_zones": ["nova"],
                "description": "",
                "tags": [],
                "is_default": external,
                "created_at": inventory.CREATED,
                "updated_at": inventory.CREATED,
                "revision_number": 1,
            }
        return nets, subnets

    def network_named(self, name: str) -> dict[str, Any]:
        return next(n for n in self.networks.values() if n["name"] == name)

    def allocate_ip(self, network_id: str) -> tuple[str, str]:
        """The lowest free address of the network's pool → (subnet id, address)."""
        net = self.networks[network_id]
        subnet = self.subnets[net["subnets"][0]]
        used = {ip["ip_address"] for p in self.all("port").values() for ip in p["fixed_ips"]}
        used |= {f["floating_ip_address"] for f in self.all("fip").values()}
        pool = subnet["allocation_pools"][0]
        start, end = ipaddress.IPv4Address(pool["start"]), ipaddress.IPv4Address(pool["end"])
        addr = start
        while addr <= end:
            if str(addr) not in used:
                return subnet["id"], str(addr)
            addr += 1
        raise LookupError(f"no more addresses on {net['name']}")

    def default_secgroup(self) -> None:
        project = self.config.project_id
        if any(g["name"] == "default" and g["project_id"] == project for g in self.all("secgroup").values()):
            return
        gid = inventory.stable_id("secgroup", project, "default")
        now = self.now()
        rules = []
        for direction, ether in (("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6")):
            rules.append(
                {
                    "id": inventory.stable_id("rule", gid, direction, ether),
                    "security_group_id": gid,
                    "direction": direction,
                    "ethertype": ether,
                    "protocol": None,
                    "port_range_min": None,
                    "port_range_max": None,
                    "remote_ip_prefix": None,
                    "remote_group_id": gid if direction == "ingress" else None,
                    "description": "",
                    "tenant_id": project,
                    "project_id": project,
                    "created_at": iso_z(now),
                    "updated_at": iso_z(now),
                    "revision_number": 0,
                }
            )
        self.save(
            "secgroup",
            {
                "id": gid,
                "name": "default",
                "description": "Default security group",
                "tenant_id": project,
                "project_id": project,
                "security_group_rules": rules,
                "stateful": True,
                "tags": [],
                "created_at": iso_z(now),
                "updated_at": iso_z(now),
                "revision_number": 1,
            },
        )
