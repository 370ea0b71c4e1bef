"""Grid'5000 host names: FQDNs, short names, secondary-interface and KaVLAN DNS names.

From the reference repository (`lib/refrepo/input_loader.rb`) and the KaVLAN wiki: a node's
primary interface in vlan N is `<node>-kavlan-N.<site>.grid5000.fr`, a secondary one
`<node>-<ethX>-kavlan-N.<site>.grid5000.fr`; KaVLAN is addressed with the legacy device name.
"""

from __future__ import annotations

from .tagging import owner_of

DOMAIN = "grid5000.fr"


def short_name(fqdn: str) -> str:
    return fqdn.split(".", 1)[0]


def site_of(fqdn: str) -> str:
    parts = fqdn.split(".")
    return parts[1] if len(parts) > 2 else ""


def cluster_of(fqdn: str) -> str:
    return short_name(fqdn).rsplit("-", 1)[0]


def node_order(fqdn: str) -> tuple[str, int]:
    """Sort key of node names in their numeric order (`taurus-2` before `taurus-10`)."""
    short = short_name(fqdn)
    base, _, num = short.rpartition("-")
    return (base, int(num)) if num.isdigit() else (short, 0)


def fqdn(node: str, site: str) -> str:
    return node if "." in node else f"{node}.{site}.{DOMAIN}"


def interface_address(node: str, site: str, device: str, primary: bool) -> str:
    """The name KaVLAN takes for an interface: the FQDN (primary) or `<node>-ethX.<site>...`."""
    short = short_name(node)
    return fqdn(short, site) if primary else f"{short}-{device}.{site}.{DOMAIN}"


def kavlan_name(node: str, site: str, vlan: str, device: str, primary: bool) -> str:
    short = short_name(node)
    if str(vlan).upper() == "DEFAULT":
        return interface_address(node, site, device, primary)
    return f"{short}-kavlan-{vlan}.{site}.{DOMAIN}" if primary else f"{short}-{device}-kavlan-{vlan}.{site}.{DOMAIN}"


def resource_name(urn: str) -> str:
    """The Pulumi resource name, the last `::` part of its URN."""
    return urn.rsplit("::", 1)[-1]


def job_name(name: str, urn: str) -> str:
    """The OAR job name of a provider-made job without a user-set name: `<resource name>-<6 hex>`,
    the hex from the URN (which holds stack, project, type and name), so it differs between
    stacks and is the same at every run. Which alive job is this resource's is proven by the
    command's tag, not by the name (see `tagging`): the hex is the tag's owner."""
    return f"{name}-{owner_of(urn)}"
