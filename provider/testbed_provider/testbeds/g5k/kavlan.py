"""KaVLAN through python-grid5000: move node interfaces into a vlan (or back to DEFAULT).

Interfaces are addressed as KaVLAN expects: the node FQDN for the primary interface,
`<node>-<ethX>.<site>.grid5000.fr` for a secondary one (legacy device name). Addresses on the
vlan come from the node's reference entry (`kavlan: {ethX: {kavlan-N: ip}}`).
"""

from __future__ import annotations

from typing import Any, Optional

from . import naming
from .session import G5kError, Session


async def move(session: Session, site: str, vlan: str, addresses: list[str]) -> dict[str, dict[str, Any]]:
    """POST the interfaces to `.../vlans/{vlan}/nodes`; address → {status, message}."""
    from grid5000.objects import Vlan

    manager = Vlan(session.site(site).vlans, {"uid": str(vlan)}).nodes
    answer = await session.call(f"moving {len(addresses)} interface(s) to vlan {vlan} on {site}", manager.submit, addresses, retry=True)
    return answer if isinstance(answer, dict) else {}


def failures(answer: dict[str, dict[str, Any]], addresses: list[str]) -> list[str]:
    """Interfaces KaVLAN did not move ("unchanged" means already there: fine)."""
    bad = []
    for address in addresses:
        entry = answer.get(address) or {}
        if entry.get("status") not in ("success", "unchanged"):
            bad.append(f"{address}: {entry.get('message') or entry.get('status') or 'no answer'}")
    return bad


async def node_reference(session: Session, node: str) -> Optional[dict[str, Any]]:
    """The reference entry of a node (`GET /sites/{s}/clusters/{c}/nodes/{n}`), None if unknown."""
    from grid5000.objects import Cluster

    site, cluster = naming.site_of(node), naming.cluster_of(node)
    nodes = Cluster(session.site(site).clusters, {"uid": cluster}).nodes
    try:
        return (await session.call(f"reading the reference of {node}", nodes.get, naming.short_name(node))).to_dict()
    except G5kError as err:
        if err.status == 404:
            return None
        raise


async def node_references(session: Session, nodes: list[str]) -> dict[str, dict[str, Any]]:
    """The reference entries of `nodes` (FQDNs), one `GET /sites/{s}/clusters/{c}/nodes` per
    cluster instead of one GET per node; a node missing from its cluster's list is read alone.
    FQDN → entry ({} if the API does not know it)."""
    from grid5000.objects import Cluster

    by_cluster: dict[tuple[str, str], list[str]] = {}
    for node in nodes:
        by_cluster.setdefault((naming.site_of(node), naming.cluster_of(node)), []).append(node)
    out: dict[str, dict[str, Any]] = {}
    for (site, cluster), members in by_cluster.items():
        manager = Cluster(session.site(site).clusters, {"uid": cluster}).nodes
        try:
            items = await session.call(f"reading the reference of cluster {cluster} at {site}", manager.list)
        except G5kError as err:
            if err.status != 404:
                raise
            items = []
        entries = {}
        for item in items:
            data = item.to_dict() if hasattr(item, "to_dict") else dict(item)
            entries[data.get("uid")] = data
        for node in members:
            found = entries.get(naming.short_name(node))
            out[node] = found if found is not None else (await node_reference(session, node) or {})
    return out


def adapter(reference: dict[str, Any], device: str) -> Optional[dict[str, Any]]:
    for nic in reference.get("network_adapters") or []:
        if nic.get("device") == device:
            return nic
    return None


def secondary_device(reference: dict[str, Any]) -> Optional[str]:
    """EnOSlib's choice: the first non-mounted, mountable, kavlan-capable Ethernet NIC by legacy name."""
    candidates = sorted(
        nic["device"]
        for nic in reference.get("network_adapters") or []
        if nic.get("device")
        and nic.get("interface") == "Ethernet"
        and nic.get("mountable")
        and not nic.get("mounted")
        and nic.get("kavlan", True)
        and not nic.get("management")
    )
    return candidates[0] if candidates else None


def primary_device(reference: dict[str, Any]) -> Optional[str]:
    for nic in reference.get("network_adapters") or []:
        if nic.get("mounted") and nic.get("device"):
            return nic["device"]
    return None


def vlan_ip(reference: dict[str, Any], device: str, vlan: str) -> Optional[str]:
    return ((reference.get("kavlan") or {}).get(device) or {}).get(f"kavlan-{vlan}")
