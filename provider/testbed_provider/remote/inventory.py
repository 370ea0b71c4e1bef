"""A Reservation's `inventory` output, checked once and turned into typed, hashable data.

Every other module of the remote layer works from `Inventory`, never from the raw dict: the
checks here are what make it safe to write host names, users and addresses into an ssh_config
and an Ansible inventory (no whitespace, no option injection), and the hashes here key the
per-process caches (workspaces, pattern resolvers). Error messages never quote key material.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from .api import RemoteError

# Host names become ssh_config `Host` aliases, Ansible host names and file names: keep them plain.
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
ADDRESS = re.compile(r"^[A-Za-z0-9:._%-]{1,255}$")  # IPv4/IPv6 literal or DNS name, nothing else
GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # Ansible's valid group names


class InventoryError(RemoteError, ValueError):
    """The inventory is malformed. A RemoteError (no host ran anything) and a ValueError, so
    callers that validate inputs (Command.check) report it against `inventory`, not `on`."""


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    user: str
    port: int
    # Ansible host variables, as canonical JSON (hashable): `testbed_networks` (network id →
    # address), `testbed_roles`, and the variables its machine group set (`vars`).
    vars_json: str = "{}"

    @property
    def vars(self) -> dict[str, Any]:
        return json.loads(self.vars_json)


@dataclass(frozen=True)
class Inventory:
    """What the remote layer needs from an inventory, in inventory order."""

    hosts: tuple[Host, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (role, host names), in inventory order
    private_key: str
    known_hosts: str
    proxy_command: Optional[str]

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def roles(self) -> list[str]:
        return [g for g, _ in self.groups]

    def connection_hash(self) -> str:
        """Identifies everything a connection depends on (and the groups, which the Ansible
        inventory file holds): one workspace per distinct value."""
        data = {
            "hosts": [[h.name, h.address, h.user, h.port] for h in self.hosts],
            "vars": [h.vars_json for h in self.hosts],
            "groups": [[g, list(m)] for g, m in self.groups],
            "key": self.private_key,
            "knownHosts": self.known_hosts,
            "proxy": self.proxy_command,
        }
        return _digest(data)

    def identity_hash(self) -> str:
        """Identifies the reservation (one client key per reservation): keys the directory of
        ControlMaster sockets, so connections survive inventory changes such as an added host,
        but two reservations (which may well reuse the same addresses) never share one."""
        return _digest({"key": self.private_key, "proxy": self.proxy_command})

    def shape_hash(self) -> str:
        """Identifies what host patterns can see: names and groups (keys the pattern cache)."""
        return _digest({"hosts": self.names, "groups": [[g, list(m)] for g, m in self.groups]})


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _host_vars(h: dict[str, Any], name: str) -> str:
    """A host's Ansible variables: its own `vars`, then what the reservation says of it."""
    own = h.get("vars") or {}
    if not isinstance(own, dict):
        raise InventoryError(f"inventory: host `{name}`'s `vars` must be an object")
    networks = {}
    for n in h.get("networks") or []:
        if isinstance(n, dict) and isinstance(n.get("id"), str) and isinstance(n.get("address"), str):
            networks[n["id"]] = n["address"]
    data = {**own, "testbed_networks": networks, "testbed_roles": [r for r in h.get("roles") or [] if isinstance(r, str)]}
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or not 0 < int(value) < 65536:
        raise InventoryError(f"inventory: {where} must be a TCP port number, got {value!r}")
    return int(value)


def parse(inventory: Any, connection: bool = True) -> Inventory:
    """Check a Reservation `inventory` (plain values, secrets already revealed) → Inventory.

    `connection=False` checks only what host patterns need (names and groups), so a pattern can
    be resolved from an inventory whose key is absent. Raises RemoteError naming the offending
    field; the private key is never quoted."""
    if not isinstance(inventory, dict):
        raise InventoryError("inventory: expected a Reservation's `inventory` output (an object with hosts, groups, ssh)")
    ssh = inventory.get("ssh", {} if not connection else None)
    if not isinstance(ssh, dict):
        raise InventoryError("inventory: `ssh` is missing (connection data: user, port, knownHosts, privateKey)")
    key = ssh.get("privateKey")
    if not connection:  # patterns only: the key is neither needed nor checked
        key = key if isinstance(key, str) else ""
    elif not isinstance(key, str) or "PRIVATE KEY" not in key:
        raise InventoryError(
            "inventory: `ssh.privateKey` is missing or is not an OpenSSH private key (pass the Reservation's `inventory` output itself)"
        )
    known = ssh.get("knownHosts") or ""
    if not isinstance(known, str):
        raise InventoryError("inventory: `ssh.knownHosts` must be known_hosts text")
    proxy = ssh.get("proxyCommand") or None
    if proxy is not None and (not isinstance(proxy, str) or "\n" in proxy or "\r" in proxy):
        raise InventoryError("inventory: `ssh.proxyCommand` must be a one-line command")
    default_user = ssh.get("user", "root")
    default_port = ssh.get("port", 22)

    raw_hosts = inventory.get("hosts")
    if not isinstance(raw_hosts, list):
        raise InventoryError("inventory: `hosts` must be a list of {name, address, roles, user, port}")
    hosts: list[Host] = []
    seen: set[str] = set()
    for i, h in enumerate(raw_hosts):
        if not isinstance(h, dict):
            raise InventoryError(f"inventory: hosts[{i}] must be an object")
        name, address, user = h.get("name"), h.get("address"), h.get("user", default_user)
        if not isinstance(name, str) or not HOST_NAME.match(name):
            raise InventoryError(f"inventory: hosts[{i}].name {name!r} is not a valid host name")
        if name in seen:
            raise InventoryError(f"inventory: host `{name}` is listed twice")
        if not isinstance(address, str) or not ADDRESS.match(address) or address.startswith("-"):
            raise InventoryError(f"inventory: host `{name}` has an invalid address {address!r}")
        if not isinstance(user, str) or not USER_NAME.match(user):
            raise InventoryError(f"inventory: host `{name}` has an invalid user {user!r}")
        seen.add(name)
        hosts.append(Host(name, address, user, _port(h.get("port", default_port), f"host `{name}`'s port"), _host_vars(h, name)))

    raw_groups = inventory.get("groups")
    if raw_groups is None:  # derive from the hosts' roles
        raw_groups = {}
        for h in raw_hosts:
            for role in h.get("roles") or []:
                raw_groups.setdefault(role, []).append(h["name"])
    if not isinstance(raw_groups, dict):
        raise InventoryError("inventory: `groups` must map each role to its host names")
    order = {h.name: k for k, h in enumerate(hosts)}
    groups: list[tuple[str, tuple[str, ...]]] = []
    for role, members in raw_groups.items():
        if not isinstance(role, str) or not GROUP_NAME.match(role) or role in ("all", "ungrouped"):
            raise InventoryError(f"inventory: {role!r} is not a usable role name")
        if not isinstance(members, list) or any(m not in order for m in members):
            unknown = [m for m in members if m not in order] if isinstance(members, list) else members
            raise InventoryError(f"inventory: role `{role}` lists unknown host(s) {unknown!r}")
        groups.append((role, tuple(sorted(set(members), key=order.__getitem__))))
    return Inventory(tuple(hosts), tuple(groups), key if not key or key.endswith("\n") else key + "\n", known, proxy)
