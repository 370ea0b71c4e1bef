"""Typed definition of testbed:index:Reservation and the types every step shares (its inventory):
the source of its schema, Check and docs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional

from ..typed.model import Resource, prop, schema_enum, schema_type

ROLE = r"[A-Za-z][A-Za-z0-9_]*"  # an Ansible group name
ROLE_HINT = "a letter, then letters, digits or `_` (an Ansible group name)"
NETWORK_ID = r"[A-Za-z][A-Za-z0-9_-]{0,62}"
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"


@schema_enum("testbed:index:MachineKind", "What a machine of a group is: a host of the testbed, or a VM it runs.")
class MachineKind(str, enum.Enum):
    HOST = "host"  # local: a network namespace with its own sshd; g5k: a node
    VM = "vm"  # a QEMU VM with a kernel of its own (local backend)


@schema_enum("testbed:index:Flavour", "A VM size, EnOSlib's flavours: cores / memory.")
class Flavour(str, enum.Enum):
    TINY = "tiny"  # 1 core, 512 MB
    SMALL = "small"  # 1 core, 1024 MB
    MEDIUM = "medium"  # 2 cores, 2048 MB
    BIG = "big"  # 3 cores, 3072 MB
    LARGE = "large"  # 4 cores, 4096 MB
    EXTRA_LARGE = "extra-large"  # 6 cores, 6144 MB


# Flavour → (cores, memory in MB), as EnOSlib's VMonG5k defines them.
FLAVOURS = {
    "tiny": (1, 512),
    "small": (1, 1024),
    "medium": (2, 2048),
    "big": (3, 3072),
    "large": (4, 4096),
    "extra-large": (6, 6144),
}
DEFAULT_FLAVOUR = "tiny"


@schema_type("testbed:index:ExistingHostNetwork", "An existing host's address on one experiment network (static backend).")
@dataclass(kw_only=True)
class ExistingHostNetwork:
    id: str = prop("The network's id (one of the Reservation's `networks`).", pattern=NETWORK_ID, hint="a network id")
    address: str = prop("The host's address on that network.")
    interface: Optional[str] = prop("The interface carrying it, when known.")


@schema_type("testbed:index:ExistingHost", "A machine that already exists (static backend), by its address.", label="an existing host")
@dataclass(kw_only=True)
class ExistingHost:
    address: str = prop("Address or DNS name SSH reaches it at.", pattern=r"[A-Za-z0-9:._%-]{1,255}", hint="an address or host name")
    user: Optional[str] = prop(
        "Login user (default `testbed:staticSshUser`).", pattern=r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", hint="a user name"
    )
    port: Optional[int] = prop("SSH port (default 22).", minimum=1, maximum=65535, hint="a TCP port")
    alias: Optional[str] = prop("Its host name in the inventory (default `<first role>-<n>`).", pattern=NAME, hint="a host name")
    networks: Optional[list[ExistingHostNetwork]] = prop("Its addresses on the Reservation's experiment networks.")


@schema_type(
    "testbed:index:MachineGroup",
    "`count` machines carrying the same roles (EnOSlib: `add_machine(roles=..., number=...)`).",
    label="a machine group",
)
@dataclass(kw_only=True)
class MachineGroup:
    roles: list[str] = prop(
        "Roles of these machines: Ansible group names used to address them in later steps.",
        min_items=1,
        noun="role",
        pattern=ROLE,
        hint=ROLE_HINT,
    )
    count: int = prop("How many machines.", minimum=1, hint="a whole number of machines")
    cluster: Optional[str] = prop("Grid'5000 cluster to take the machines from (g5k backend only; the local backend rejects it).")
    site: Optional[str] = prop(
        "Grid'5000 site of these machines (g5k backend only; default `testbed:g5kSite`). One OAR job per site; several sites share one start date."
    )
    walltime: Optional[str] = prop(
        "How long the reservation lasts, `H:MM:SS` (g5k: the OAR job's walltime; chameleon: the Blazar lease's length, "
        "extended in place when it grows; one value per reservation; default `1:00:00`)."
    )
    environment: Optional[str] = prop(
        "Operating system installed on these machines: g5k, the Kadeploy environment (default `debian12-min`); "
        "chameleon, the Glance image (default `testbed:chameleonImage`)."
    )
    node_type: Optional[str] = prop(
        "Chameleon node type of these machines, Blazar's `node_type` (chameleon backend only; default `testbed:chameleonNodeType`).",
        pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        hint="a node type such as `compute_skylake`",
    )
    start: Optional[str] = prop(
        "When the lease starts, `YYYY-MM-DD HH:MM` in UTC (chameleon backend only; one value per reservation; default now).",
        pattern=r"\d{4}-\d\d-\d\d \d\d:\d\d",
        hint="a UTC date such as `2026-12-24 08:00`",
    )
    kind: MachineKind = prop(
        "`host`: the testbed's own machines (local: network namespaces sharing this machine's kernel; g5k: nodes). "
        "`vm`: QEMU VMs with a kernel of their own, reached and used like any host. Local: on this machine, on the same "
        "networks as namespace hosts. g5k (needs `cluster`), à la VMonG5k: as many of the cluster's nodes as the VMs' cores "
        "and memory take, a slash_22 subnet per site, each VM the subnet address the site's DHCP gives its 00:16:3e MAC, "
        "reached through the same gateway as the nodes; a network of VM groups only is their subnet addresses.",
        default=MachineKind.HOST,
    )
    flavour: Optional[Flavour] = prop(
        "Size of each VM (kind `vm`), EnOSlib's flavours: `tiny` 1 core / 512 MB (the default), `small` 1/1024, "
        "`medium` 2/2048, `big` 3/3072, `large` 4/4096, `extra-large` 6/6144. Or give `cores` and `memoryMb` instead."
    )
    cores: Optional[int] = prop(
        "Cores of each VM (kind `vm`; instead of `flavour`; default 1).", minimum=1, maximum=64, hint="a whole number of cores"
    )
    memory_mb: Optional[int] = prop(
        "Memory of each VM in MB (kind `vm`; instead of `flavour`; default 512).",
        minimum=128,
        hint="a whole number of MB, at least 128",
    )
    image: Optional[str] = prop(
        "VM image (kind `vm`): the directory of an image built by `python -m testbed_provider.hosts.vm.image`, or a qcow2 "
        "root disk made from one (booted with the project's kernel). Default: the project's Debian 12 image, built on first use."
    )
    hosts: Optional[list[ExistingHost]] = prop(
        "The machines of this group when they already exist (static backend only; `count` must match): instead of "
        "those `testbed:staticHosts` lists for the group's first role.",
        min_items=1,
        noun="host",
    )
    vars: Optional[dict[str, Any]] = prop(
        "Ansible variables of the group's hosts (EnOSlib's `host.extra`): every Play on those hosts sees them, beside `testbed_networks` (network id → the host's address) and `testbed_roles`. A change updates the inventory in place (nothing is re-reserved) and re-runs the Plays on those hosts."
    )


@schema_type("testbed:index:Network", "An experiment network joining the machines that carry one of `roles`.", label="a network")
@dataclass(kw_only=True)
class Network:
    id: str = prop(
        "Network identifier, referenced by host network entries.",
        pattern=NETWORK_ID,
        hint="a letter, then letters, digits, `_` or `-` (at most 63)",
    )
    roles: Optional[list[str]] = prop(
        "Machine roles whose hosts join this network; every machine when omitted.",
        min_items=1,
        noun="machine role (omit `roles` to join every machine)",
    )
    cidr: Optional[str] = prop("Address range. Local backend: within 198.18.0.0/16, default 198.18.<index>.0/24.")


@schema_type("testbed:index:HostNetwork", "A host's interface on one experiment network.")
@dataclass(kw_only=True)
class HostNetwork:
    id: str = prop("Network id.")
    address: str = prop("The host's address on that network.")
    interface: str = prop("Interface name on the host.")
    cidr: str = prop("The network's address range.")


@schema_type("testbed:index:Host", "One reserved machine.")
@dataclass(kw_only=True)
class Host:
    name: str = prop("Host name (also its Ansible inventory name).")
    address: str = prop("Address on the management network, the one SSH uses.")
    roles: list[str] = prop("Roles of this host.")
    networks: list[HostNetwork] = prop("Interfaces on experiment networks.")


@schema_type("testbed:index:SshConnection", "How to reach the hosts over SSH (the private key is the separate, secret `sshPrivateKey`).")
@dataclass(kw_only=True)
class SshConnection:
    user: str = prop("Login user (the default: on the static backend a host may have its own, which the inventory carries).")
    port: int = prop("SSH port (likewise the default; the inventory carries each host's).")
    known_hosts: str = prop("known_hosts lines pinning every host's key.")
    proxy_command: Optional[str] = prop("ProxyCommand reaching the hosts (local backend: through the switch namespace).")
    public_key: Optional[str] = prop("Public half of the reservation's SSH key.")


@schema_type("testbed:index:InventoryHost", "A host entry of the inventory.")
@dataclass(kw_only=True)
class InventoryHost:
    name: str = prop("Host name.")
    address: str = prop("Address SSH connects to.")
    roles: list[str] = prop("Roles (inventory groups).")
    networks: list[HostNetwork] = prop("Experiment interfaces.")
    user: str = prop("Login user (the default: on the static backend a host may have its own, which the inventory carries).")
    port: int = prop("SSH port (likewise the default; the inventory carries each host's).")
    vars: Optional[dict[str, Any]] = prop("The host's Ansible variables from its machine group's `vars`.")


@schema_type("testbed:index:InventorySsh", "SSH settings shared by every inventory host.")
@dataclass(kw_only=True)
class InventorySsh:
    user: str = prop("Login user (the default: on the static backend a host may have its own, which the inventory carries).")
    port: int = prop("SSH port (likewise the default; the inventory carries each host's).")
    known_hosts: str = prop("known_hosts lines.")
    proxy_command: Optional[str] = prop("ProxyCommand, when hosts are not directly reachable.")
    public_key: Optional[str] = prop("Public key.")
    private_key: str = prop("Private key (secret).", secret=True)


@schema_type(
    "testbed:index:Inventory", "Everything a later step needs to reach the hosts from stack state alone (its `ssh.privateKey` is secret)."
)
@dataclass(kw_only=True)
class Inventory:
    hosts: list[InventoryHost] = prop("Hosts.")
    groups: dict[str, list[str]] = prop("Role -> host names.")
    ssh: InventorySsh = prop("SSH settings shared by every inventory host, the private key among them.")


# testbed:index:Reservation
@dataclass(kw_only=True)
class ReservationArgs:
    name: Optional[str] = prop(
        "Reservation name (defaults to the resource name); namespaces, jobs and logs carry it.",
        fill=True,
        pattern=NAME,
        hint="1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
    )
    machines: list[MachineGroup] = prop("Machine groups to reserve.", min_items=1, noun="machine group `{roles, count}`")
    networks: Optional[list[Network]] = prop("Experiment networks; hosts are always reachable on a management network besides.")


@dataclass(kw_only=True)
class ReservationState(ReservationArgs):
    backend: str = prop("The testbed this reservation lives on.", output=True)
    hosts: list[Host] = prop("The reserved hosts.", output=True)
    roles: dict[str, list[str]] = prop("Role -> host names.", output=True)
    addresses: dict[str, dict[str, list[str]]] = prop(
        "Network id -> role -> the addresses of that role's hosts on the network, in host order: "
        '`addresses["experiment"]["server"][0]` is the first server\'s address on the `experiment` network. The network '
        "SSH uses (the local testbed's management network, Grid'5000's production network: each host's `address`) is `_ssh`.",
        output=True,
    )
    host_addresses: dict[str, dict[str, str]] = prop(
        "Host name -> network id -> the host's address on that network (`_ssh`: the address SSH uses), as `testbed_networks` "
        "gives each host in templates.",
        output=True,
    )
    ssh: SshConnection = prop("SSH connection data (public).", output=True)
    inventory: Inventory = prop(
        "Inventory for later steps; only its `ssh.privateKey` is secret in state, so host names, addresses and roles show.", output=True
    )
    ssh_private_key: str = prop("Private SSH key reaching every host as root (secret).", secret=True, output=True)


RESERVATION = Resource(
    "testbed:index:Reservation",
    "Machines and networks reserved on the stack's testbed. Changing `machines` adds, removes or repairs hosts in place; changing `name` or `networks` replaces the reservation (the old one is released first).",
    ReservationArgs,
    ReservationState,
)
