"""Ansible facts of a reservation's hosts: one `setup` task through the Play machinery.

`gather` runs `ansible.builtin.setup` (with `gather_subset`) as a one-task play registered as
`facts` (remote/playbook.run_play: same workspace, ControlMaster sockets, pinned host keys as
every other step), and returns each host's `ansible_facts`. `curate` picks what experiments
usually want (addresses, interfaces, CPU, memory, distribution, kernel) out of them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from .api import Progress, RemoteError
from .patterns import IMPORT_LOCK
from .playbook import run_play

SPECIAL_SUBSETS = {"all", "min"}
_known: Optional[set[str]] = None


def known_subsets() -> set[str]:
    """What `gather_subset` accepts in this ansible-core (collector names and their fact ids)."""
    global _known
    if _known is not None:
        return _known
    with IMPORT_LOCK:  # see patterns.IMPORT_LOCK
        from ansible.module_utils.facts import default_collectors

    names = set(SPECIAL_SUBSETS)
    for collector in default_collectors.collectors:
        names.add(collector.name)
        names |= set(getattr(collector, "_fact_ids", ()) or ())
    _known = names
    return names


def check_subset(subset: Any, prop: str = "subset") -> list[tuple[str, str]]:
    """(property, reason) for each bad entry of `subset`; [] when valid."""
    if not isinstance(subset, list) or not subset:
        return [(prop, 'must be a non-empty list of Ansible fact subsets, e.g. ["network", "hardware"]')]
    known = known_subsets()
    problems = []
    for i, item in enumerate(subset):
        if not isinstance(item, str) or item.lstrip("!") not in known:
            choices = ", ".join(sorted(n for n in known if n.isidentifier() and not n.startswith("ansible_"))[:40])
            problems.append((f"{prop}[{i}]", f"unknown fact subset {item!r} (a `!` prefix excludes one): {choices}"))
    return problems


async def gather(
    inventory: dict[str, Any],
    pattern: str,
    subset: Optional[list[str]] = None,
    *,
    timeout: float = 0,
    cancelled: Optional[asyncio.Event] = None,
    progress: Optional[Progress] = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(host → ansible_facts, host → why it failed) for the hosts `pattern` matches."""
    task: dict[str, Any] = {"name": "gather facts", "ansible.builtin.setup": {}, "register": "facts"}
    if subset:
        task["ansible.builtin.setup"]["gather_subset"] = list(subset)
    report = await run_play(inventory, pattern, [task], timeout=timeout, cancelled=cancelled, progress=progress)
    facts: dict[str, dict[str, Any]] = {}
    for host in report.hosts:
        value = report.registered.get(host, {}).get("facts")
        if isinstance(value, dict) and isinstance(value.get("ansible_facts"), dict) and not value.get("failed"):
            # The module returns `ansible_`-prefixed keys; plays see them without it (ansible_facts.*).
            facts[host] = {k.removeprefix("ansible_"): v for k, v in value["ansible_facts"].items()}
    errors: dict[str, str] = {}
    for r in report.failed:
        errors[r.host] = (r.msg or r.stderr or r.stdout or r.status).strip()[-400:]
    for host in report.hosts:
        if host not in facts and host not in errors:
            errors[host] = (
                "timed out"
                if report.outcome == "timeout"
                else report.outcome
                if report.outcome != "exited"
                else f"no facts (ansible-playbook exited with {report.returncode}: {report.stderr.strip()[-300:]})"
            )
    if not facts and not errors:
        raise RemoteError("no host reported facts")
    return facts, errors


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def curate(name: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The usual facts of one host under stable names, plus the raw ones as `facts`."""
    interfaces = []
    for iface in sorted(facts.get("interfaces") or []):
        data = facts.get(str(iface).replace("-", "_").replace(".", "_"))
        if not isinstance(data, dict):
            continue
        ipv4 = _mapping(data.get("ipv4"))
        interfaces.append(
            {
                "name": str(iface),
                "ipv4": str(ipv4.get("address") or ""),
                "ipv4Prefix": _int(ipv4.get("prefix")),
                "ipv4Secondaries": [str(a.get("address")) for a in data.get("ipv4_secondaries") or [] if isinstance(a, dict)],
                "ipv6": [str(a.get("address")) for a in data.get("ipv6") or [] if isinstance(a, dict)],
                "macAddress": str(data.get("macaddress") or ""),
                "mtu": _int(data.get("mtu")),
                "active": bool(data.get("active")),
            }
        )
    default = _mapping(facts.get("default_ipv4"))
    return {
        "name": name,
        "hostname": str(facts.get("hostname") or ""),
        "fqdn": str(facts.get("fqdn") or ""),
        "defaultIpv4": str(default.get("address") or ""),
        "defaultInterface": str(default.get("interface") or ""),
        "allIpv4": [str(a) for a in facts.get("all_ipv4_addresses") or []],
        "interfaces": interfaces,
        "processorCount": _int(facts.get("processor_count")),
        "processorCores": _int(facts.get("processor_cores")),
        "processorVcpus": _int(facts.get("processor_vcpus")),
        "memoryMb": _int(facts.get("memtotal_mb")),
        "distribution": str(facts.get("distribution") or ""),
        "distributionVersion": str(facts.get("distribution_version") or ""),
        "kernel": str(facts.get("kernel") or ""),
        "architecture": str(facts.get("architecture") or ""),
        "facts": facts,
    }


def _mapping(value: Any) -> dict[str, Any]:
    """A fact that should be an object, or an empty one (facts differ between systems)."""
    return value if isinstance(value, dict) else {}
