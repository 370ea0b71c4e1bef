"""Typed definition of testbed:g5k:VlanAttachment: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..typed.model import Resource, prop, schema_type
from .g5k_job_schema import JOB_UID_HINT, NODE, NODE_HINT, SITE, SITE_HINT, VLAN_ID, VLAN_ID_HINT

# `primary`, or a legacy device name: KaVLAN refuses predictable names like `eno2`.
INTERFACE = r"primary|(eth|ib|myri)[0-9]+"


@schema_type("testbed:g5k:VlanMember", "One interface in the vlan.")
@dataclass(kw_only=True)
class VlanMember:
    node: str = prop("Node FQDN (as OAR names it; moving interfaces does not change it).")
    device: str = prop("Legacy device name of the interface, e.g. `eth1`.")
    interface_address: str = prop("The name KaVLAN moved: the node FQDN (primary) or `<node>-ethX.<site>.grid5000.fr`.")
    hostname: str = prop("DNS name on the vlan: `<node>-kavlan-N.<site>.grid5000.fr` or `<node>-ethX-kavlan-N.<site>.grid5000.fr`.")
    ip: str = prop("IPv4 address on the vlan, from the reference API.")


# testbed:g5k:VlanAttachment
@dataclass(kw_only=True)
class VlanAttachmentArgs:
    site: str = prop("Site of the job.", pattern=SITE, hint=SITE_HINT)
    job_uid: int = prop("OAR id of a running job holding the vlan (a Job's `uid`).", minimum=1, hint=JOB_UID_HINT)
    vlan: Optional[str] = prop(
        "KaVLAN id (the job's first vlan when omitted).", pattern=VLAN_ID, hint=VLAN_ID_HINT + " (omit it to use the job's first vlan)"
    )
    nodes: Optional[list[str]] = prop(
        "Nodes of the job to attach (all of them when omitted).",
        min_items=1,
        pattern=NODE,
        hint=NODE_HINT,
        noun="node name of the job (omit `nodes` for every node)",
    )
    interface: str = prop(
        "`primary`, or the legacy device name of a secondary interface such as `eth1`.",
        default="eth1",
        pattern=INTERFACE,
        hint="`primary` or a legacy device name such as `eth1`; KaVLAN refuses predictable names like `eno2`",
    )


@dataclass(kw_only=True)
class VlanAttachmentState(VlanAttachmentArgs):
    vlan_id: str = prop("The vlan the interfaces are in.", output=True)
    members: list[VlanMember] = prop("The attached interfaces.", output=True)


VLANATTACHMENT = Resource(
    "testbed:g5k:VlanAttachment",
    "Interfaces of a Job's nodes put into a KaVLAN vlan; deleting it puts them back in DEFAULT. Any input change replaces it.",
    VlanAttachmentArgs,
    VlanAttachmentState,
    label="a g5k VlanAttachment",
)
