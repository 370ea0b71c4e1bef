"""`testbed:g5k:VlanAttachment`: interfaces of a Job's nodes put into a KaVLAN vlan.

`interface` is `primary` (the node's FQDN; cuts it from the production network) or a legacy
device name such as `eth1` (KaVLAN does not accept predictable names like `eno2`). The vlan
defaults to the job's first one. Outputs name each interface on the vlan
(`<node>-eth1-kavlan-4.<site>.grid5000.fr`) with its address from the reference API. Delete
moves the interfaces back to DEFAULT; once the job has ended KaVLAN has done that itself.
"""

from __future__ import annotations

from typing import Any, Optional

from ..common.deadlines import deadline
from ..protocol.codec import UNKNOWN
from ..protocol.errors import ResourceFailure
from ..testbeds.g5k import jobs, kavlan, naming
from ..testbeds.g5k.session import Cancelled, G5kError, Session
from ..typed.check import check_inputs, with_defaults
from ..typed.model import input_names
from .base import CheckResult, ReadResult, ResourceController
from .diff import DiffResult, diff_inputs
from .g5k_common import default, job_of_step_alive, settings_of
from .g5k_vlan_schema import VLANATTACHMENT, VlanAttachmentArgs

INPUT_KEYS = input_names(VlanAttachmentArgs)
COMPUTED = ("vlanId", "members")


class VlanAttachment(ResourceController):
    token = "testbed:g5k:VlanAttachment"

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs = {k: v for k, v in news.items() if v is not None}
        return CheckResult(inputs, check_inputs(VlanAttachmentArgs, inputs, VLANATTACHMENT.label).failures)

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old = with_defaults(VlanAttachmentArgs, old_inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS})
        new = with_defaults(VlanAttachmentArgs, news)  # `interface: eth1` given or omitted is the same
        result = diff_inputs(old, new, replace_keys=set(old) | set(new))
        result.delete_before_replace = True  # an interface is in one vlan at a time
        return result

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", {**inputs, **{k: UNKNOWN for k in COMPUTED}}
        site, uid = inputs["site"], int(inputs["jobUid"])
        progress = self.ctx.log.status(urn)
        async with deadline(self.ctx.cancelled, timeout) as limit:
            session = Session(settings_of(self.ctx), limit.stop)
            try:
                job = await jobs.get(session, site, uid)
                if job is None or job.get("state") != jobs.RUNNING:
                    raise ResourceFailure(f"job {site}:{uid} is not running (state `{(job or {}).get('state', 'unknown')}`)")
                vlans = [str(v) for v in (job.get("resources_by_type") or {}).get("vlans") or []]
                vlan = inputs.get("vlan") or (vlans[0] if vlans else None)
                if vlan is None:
                    raise ResourceFailure(f"job {site}:{uid} holds no vlan; add `vlan: {{type: kavlan}}` to the Job")
                assigned = list(job.get("assigned_nodes") or [])
                nodes = [naming.fqdn(n, site) for n in inputs.get("nodes") or assigned]
                foreign = [n for n in nodes if n not in assigned]
                if foreign:
                    raise ResourceFailure(f"nodes {', '.join(foreign)} do not belong to job {site}:{uid}")
                interface = inputs.get("interface", default(VlanAttachmentArgs, "interface"))
                members = await self._plan(session, site, vlan, nodes, interface)
                addresses = [m["interfaceAddress"] for m in members]
                await progress(f"moving {len(addresses)} interface(s) into vlan {vlan}")
                answer = await kavlan.move(session, site, vlan, addresses)
                bad = kavlan.failures(answer, addresses)
                if bad:
                    # Put back what moved: nothing half-attached is left outside the stack.
                    moved = [a for a in addresses if (answer.get(a) or {}).get("status") == "success"]
                    if moved:
                        await kavlan.move(session, site, "DEFAULT", moved)
                    raise ResourceFailure(f"KaVLAN refused to move into vlan {vlan}: {'; '.join(bad)}")
            except (G5kError, Cancelled) as err:
                raise ResourceFailure(limit.explain(f"attaching to the vlan failed: {err or 'cancelled'}")) from err
            finally:
                session.close()
        await self.ctx.log.info(urn, f"{len(members)} interface(s) in vlan {vlan}")
        return f"{site}:{uid}:{vlan}:{interface}", {**inputs, "vlanId": vlan, "members": members}

    async def _plan(self, session: Session, site: str, vlan: str, nodes: list[str], interface: str) -> list[dict[str, Any]]:
        members = []
        for node in nodes:
            ref = await kavlan.node_reference(session, node)
            if ref is None:
                raise ResourceFailure(f"node {node} is unknown to the reference API")
            primary = interface == "primary"
            device = (kavlan.primary_device(ref) if primary else interface) or ""
            nic = kavlan.adapter(ref, device)
            if nic is None:
                devices = ", ".join(n.get("device", "?") for n in ref.get("network_adapters") or [])
                raise ResourceFailure(f"node {node} has no interface `{interface}` (its devices: {devices})")
            if not primary and (nic.get("mounted") or nic.get("kavlan") is False or nic.get("management")):
                raise ResourceFailure(f"interface {device} of {node} cannot be put in a vlan as a secondary interface")
            members.append(
                {
                    "node": node,
                    "device": device,
                    "interfaceAddress": naming.interface_address(node, site, device, primary),
                    "hostname": naming.kavlan_name(node, site, vlan, device, primary),
                    "ip": kavlan.vlan_ip(ref, device, vlan) or "",
                }
            )
        return members

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        if not outputs:
            raise ResourceFailure("importing a VlanAttachment is not supported; declare it and run `pulumi up`")
        if not await job_of_step_alive(self.ctx, outputs):
            return None
        return ReadResult(id, outputs, inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS})

    async def update(
        self,
        id: str,
        urn: str,
        outputs: dict[str, Any],
        old_inputs: dict[str, Any],
        news: dict[str, Any],
        preview: bool,
        timeout: float = 0,
    ) -> dict[str, Any]:
        return {**outputs, **news}

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        site = outputs.get("site")
        addresses = [m["interfaceAddress"] for m in outputs.get("members") or []]
        if not site or not addresses:
            return
        session = Session(settings_of(self.ctx), self.ctx.cancelled)
        try:
            job = await jobs.get(session, site, int(outputs["jobUid"]))
            if job is None or job.get("state") in jobs.GONE:
                return  # the job's end put the interfaces back
            answer = await kavlan.move(session, site, "DEFAULT", addresses)
            bad = kavlan.failures(answer, addresses)
            if bad:
                raise ResourceFailure(f"KaVLAN did not put back {'; '.join(bad)}")
        except (G5kError, Cancelled) as err:
            raise ResourceFailure(f"moving the interfaces back to DEFAULT failed (retry `pulumi destroy`): {err}") from err
        finally:
            session.close()
