"""The static backend's settings, from the `testbed:static*` keys: the hosts by role, the key,
the user, the ProxyCommand and the known host keys. Parsed once at Configure; every failure
names its key (and, inside `staticHosts`, the host)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

from ...common.results import CheckFailure
from ...config_schema import ConfigArgs
from ...typed.model import default_of, input_names

KEYS = {k for k in input_names(ConfigArgs) if k.startswith("static")}
ADDRESS = re.compile(r"^[A-Za-z0-9:._%-]{1,255}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
DEFAULT_KEYS = ("~/.ssh/id_ed25519", "~/.ssh/id_rsa")


@dataclass(frozen=True)
class StaticNic:
    id: str
    address: str
    interface: str = ""


@dataclass(frozen=True)
class StaticHost:
    address: str
    user: Optional[str] = None
    port: int = 22
    alias: Optional[str] = None
    networks: tuple[StaticNic, ...] = ()


@dataclass(frozen=True)
class StaticSettings:
    hosts: dict[str, list[StaticHost]] = field(default_factory=dict)  # role → hosts, in order
    key_file: Optional[str] = None
    user: str = default_of(ConfigArgs, "static_ssh_user")
    proxy_command: str = ""
    known_hosts: str = ""


def parse_host(entry: Any, where: str, fail) -> Optional[StaticHost]:
    if isinstance(entry, str):
        entry = {"address": entry}
    if not isinstance(entry, dict):
        fail(f"{where}: expected an object with `address` (or an address), got {type(entry).__name__}")
        return None
    unknown = sorted(set(entry) - {"address", "user", "port", "alias", "networks"})
    if unknown:
        fail(f"{where}: unknown field(s) {', '.join(unknown)} (known: address, user, port, alias, networks)")
    address = entry.get("address")
    if not isinstance(address, str) or not ADDRESS.match(address):
        fail(f"{where}.address: `{address}` is not an address or host name")
        return None
    user, port, alias = entry.get("user"), entry.get("port"), entry.get("alias")
    port = 22 if port is None else port
    if user is not None and (not isinstance(user, str) or not USER.match(user)):
        fail(f"{where}.user: `{user}` is not a user name")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        fail(f"{where}.port: `{port}` is not a TCP port (1-65535)")
        port = 22
    if alias is not None and (not isinstance(alias, str) or not NAME.match(alias)):
        fail(f"{where}.alias: `{alias}` is not a host name (letters, digits, `.`, `_`, `-`)")
        alias = None
    nics = []
    for k, nic in enumerate(entry.get("networks") or []):
        if not isinstance(nic, dict) or not isinstance(nic.get("id"), str) or not isinstance(nic.get("address"), str):
            fail(f"{where}.networks[{k}]: expected `{{id, address, interface?}}`")
            continue
        nics.append(StaticNic(nic["id"], nic["address"], str(nic.get("interface") or "")))
    ids = [n.id for n in nics]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        fail(f"{where}.networks: `{dup}` listed twice")
    return StaticHost(address, user, port, alias, tuple(nics))


def parse_settings(values: dict[str, Any]) -> tuple[Optional[StaticSettings], list[CheckFailure]]:
    """The settings, or None with failures naming each bad key."""
    failures: list[CheckFailure] = []
    text = values.get("staticHosts")
    hosts: dict[str, list[StaticHost]] = {}
    if text is None or (isinstance(text, str) and not text.strip()):
        pass  # the machine groups may name their own `hosts` (validate says when a group has none)
    else:
        try:
            data = yaml.safe_load(text) if isinstance(text, str) else text
        except yaml.YAMLError as err:
            data = None
            failures.append(CheckFailure("staticHosts", f"not YAML or JSON: {str(err).splitlines()[0]}"))
        if data is not None and not isinstance(data, dict):
            failures.append(CheckFailure("staticHosts", "expected an object: role → list of hosts"))
        elif isinstance(data, dict):
            for role, entries in data.items():

                def fail(reason: str) -> None:
                    failures.append(CheckFailure("staticHosts", reason))

                if not isinstance(entries, list):
                    fail(f"`{role}`: expected a list of hosts")
                    continue
                parsed = [parse_host(e, f"{role}[{k}]", fail) for k, e in enumerate(entries)]
                hosts[str(role)] = [h for h in parsed if h is not None]
    key_file = values.get("staticSshKeyFile")
    if key_file:
        key_file = os.path.expanduser(str(key_file))
        if not os.path.isfile(key_file):
            failures.append(CheckFailure("staticSshKeyFile", f"`{key_file}` does not exist"))
    else:
        key_file = next((p for p in map(os.path.expanduser, DEFAULT_KEYS) if os.path.isfile(p)), None)
        if key_file is None:
            failures.append(CheckFailure("staticSshKeyFile", f"no key given and none of {', '.join(DEFAULT_KEYS)} exists"))
    if failures:
        return None, failures
    return (
        StaticSettings(
            hosts=hosts,
            key_file=key_file,
            user=str(values.get("staticSshUser") or default_of(ConfigArgs, "static_ssh_user")),
            proxy_command=str(values.get("staticSshProxyCommand") or ""),
            known_hosts=str(values.get("staticKnownHosts") or ""),
        ),
        [],
    )
