"""Typed definition of the provider functions testbed:index:getBackend and testbed:index:getFacts: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .resources.steps_schema import SECONDS_HINT, StepArgs
from .typed.model import Function, prop, schema_type


@schema_type("testbed:index:InterfaceFacts", "One network interface of a host, from Ansible's facts.")
@dataclass(kw_only=True)
class InterfaceFacts:
    name: str = prop("Interface name (`eth0`, `lo`…).")
    ipv4: str = prop("Primary IPv4 address (empty when none).")
    ipv4_prefix: int = prop("Its prefix length.")
    ipv4_secondaries: list[str] = prop("Other IPv4 addresses.")
    ipv6: list[str] = prop("IPv6 addresses.")
    mac_address: str = prop("MAC address.")
    mtu: int = prop("MTU.")
    active: bool = prop("Whether it is up.")


@schema_type(
    "testbed:index:HostFacts",
    'A host\'s Ansible facts: the usual ones under stable names, and all of them as `facts`. Fields whose subset was not gathered are empty (0, "").',
)
@dataclass(kw_only=True)
class HostFacts:
    name: str = prop("Inventory host name.")
    hostname: str = prop("The host's own hostname.")
    fqdn: str = prop("Fully qualified name.")
    default_ipv4: str = prop("IPv4 address of the default route's interface (empty when the host has no default route).")
    default_interface: str = prop("Interface of the default route.")
    all_ipv4: list[str] = prop("Every IPv4 address but loopback.")
    interfaces: list[InterfaceFacts] = prop("Network interfaces, by name.")
    processor_count: int = prop("Processor sockets.")
    processor_cores: int = prop("Cores per processor.")
    processor_vcpus: int = prop("Logical CPUs.")
    memory_mb: int = prop("Total memory, MiB.")
    distribution: str = prop("Distribution (`Debian`…).")
    distribution_version: str = prop("Its version.")
    kernel: str = prop("Kernel release.")
    architecture: str = prop("CPU architecture (`x86_64`…).")
    facts: dict[str, Any] = prop("Every fact Ansible gathered (`ansible_facts`, keys without the `ansible_` prefix).")


# testbed:index:getBackend
@dataclass(kw_only=True)
class GetBackendArgs:
    backend: Optional[str] = prop("Backend to ask about; the provider's `testbed:backend` when omitted.")


@dataclass(kw_only=True)
class GetBackendResult:
    backend: str = prop("Backend name.")
    ready: bool = prop("Whether it can run here.")
    reason: str = prop("Why not, when it cannot.")
    available: list[str] = prop("Backends this provider offers.")


GET_BACKEND = Function(
    "testbed:index:getBackend",
    "Which testbed backend a stack uses and whether it can run on this machine (privileges, tools).",
    GetBackendArgs,
    GetBackendResult,
)


# testbed:index:getFacts
@dataclass(kw_only=True)
class GetFactsArgs(StepArgs):
    subset: Optional[list[str]] = prop("Ansible's `gather_subset` (`network`, `hardware`, `virtual`, `!facter`…; all when omitted).")
    timeout: float = prop("Seconds before gathering is stopped (0: no limit).", default=120.0, minimum=0, hint=SECONDS_HINT)


@dataclass(kw_only=True)
class GetFactsResult:
    names: list[str] = prop("The matched hosts, in inventory order.")
    hosts: dict[str, HostFacts] = prop("Host name → its facts.")


GET_FACTS = Function(
    "testbed:index:getFacts",
    "Ansible facts of the hosts of a Reservation that match a pattern (interfaces and addresses, CPU, memory, distribution, kernel, and every raw fact), for later steps' inputs. Gathered on every preview and update (read-only); a pattern matching nothing or an unknown subset is an input error naming the argument; an unreachable host fails the call naming it.",
    GetFactsArgs,
    GetFactsResult,
)
