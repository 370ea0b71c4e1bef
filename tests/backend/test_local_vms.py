"""LocalTestbed with `kind: vm` groups, real QEMU (root only): a VM beside a namespace host,
reconciled when its size or kind changes, and released from its run dir alone (as `testbed gc`
and the watchdog do, with no state recording it)."""

from __future__ import annotations

import os
import shutil

import pytest

from testbed_provider.hosts.netns import list_namespaces
from testbed_provider.hosts.vm import qemu
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec, VmSize

from .test_local_testbed import ssh

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "cpio", "depmod"))
        or not os.path.exists("/bin/busybox"),
        reason="VMs need QEMU, mmdebstrap, busybox-static, cpio, kmod (`make setup`)",
    ),
]


def spec(vm_group: MachineGroup) -> ReservationSpec:
    return ReservationSpec("vmbed", [MachineGroup(["server"], 1), vm_group], [NetworkSpec("exp")])


def handle(state: dict, name: str) -> qemu.VmHandle:
    return qemu.VmHandle.from_state(state["local"]["hosts"][name]["vm"])


async def test_a_vm_is_reconciled_when_its_size_or_kind_changes(beds):
    tb = beds.testbed()
    tiny = spec(MachineGroup(["vm"], 1, kind="vm", vm=VmSize(1, 512, "tiny")))
    assert tb.validate(tiny) == []
    state = await beds.reserve(tiny)
    first = handle(state, "vm-1")
    assert qemu.running(first) and state["local"]["hosts"]["vm-1"]["namespace"] == ""
    assert (await ssh(state, "vm-1", "hostname; nproc")).split() == ["vm-1", "1"]
    assert (
        await ssh(state, "vm-1", "ip -br -4 addr show eth1")
        == f"eth1             UP             {state['hosts'][1]['networks'][0]['address']}/24"
    )

    # unchanged: kept (same QEMU)
    state = await tb.reconcile(state, tiny, beds.progress)
    assert handle(state, "vm-1").pid == first.pid
    assert beds.messages[-1] == "reconciling hosts: keeping 2", beds.messages[-1]

    # another size: recreated, the old QEMU stopped and its overlay removed
    bigger = spec(MachineGroup(["vm"], 1, kind="vm", vm=VmSize(2, 640)))
    state = await tb.reconcile(state, bigger, beds.progress)
    beds.states.append(state)
    second = handle(state, "vm-1")
    assert second.pid != first.pid and qemu.running(second) and not qemu.running(first)
    assert any("recreating (roles or kind changed) vm-1" in m for m in beds.messages), beds.messages
    assert (await ssh(state, "vm-1", "nproc")) == "2"  # a new host key, pinned: strict checking passes

    # kind host: the VM gives way to a namespace host of the same name and addresses
    addresses = [h for h in state["hosts"] if h["name"] == "vm-1"][0]
    state = await tb.reconcile(state, spec(MachineGroup(["vm"], 1)), beds.progress)
    beds.states.append(state)
    assert not qemu.running(second) and not os.path.exists(second.overlay)
    assert "kind" not in state["local"]["hosts"]["vm-1"] and state["local"]["hosts"]["vm-1"]["namespace"]
    assert [h for h in state["hosts"] if h["name"] == "vm-1"][0] == addresses
    assert (await ssh(state, "vm-1", "uname -r")) == os.uname().release

    await tb.release(state, beds.progress)
    assert list_namespaces(state["local"]["prefix"]) == [] and not os.path.exists(state["local"]["runDir"])


async def test_a_vm_is_released_from_its_run_dir_alone(beds):
    tb = beds.testbed()
    state = await beds.reserve(spec(MachineGroup(["vm"], 1, kind="vm", vm=VmSize(1, 512))))
    vm = handle(state, "vm-1")
    assert qemu.running(vm)
    await tb.release_unrecorded(state["local"]["runDir"], beds.progress)
    assert not qemu.running(vm)
    assert list_namespaces(state["local"]["prefix"]) == [] and not os.path.exists(state["local"]["runDir"])
    assert any("stopping 1 VM(s)" in m for m in beds.messages), beds.messages


async def test_a_vms_etc_hosts_names_the_other_hosts_and_follows_the_host_list(beds):
    """Names resolve on a VM as on a namespace host: its /etc/hosts (given at boot) lists the
    reservation's hosts; a host added later is pushed to the running VM (same QEMU)."""
    tb = beds.testbed()
    vm = MachineGroup(["vm"], 1, kind="vm", vm=VmSize(1, 512, "tiny"))
    state = await beds.reserve(spec(vm))
    first = handle(state, "vm-1")
    address = {h["name"]: h["address"] for h in state["hosts"]}
    assert (await ssh(state, "vm-1", "getent hosts server-1")).split() == [address["server-1"], "server-1"]
    assert (await ssh(state, "vm-1", "getent hosts vm-1")).split() == [address["vm-1"], "vm-1"]

    grown = ReservationSpec("vmbed", [MachineGroup(["server"], 2), vm], [NetworkSpec("exp")])
    state = await tb.reconcile(state, grown, beds.progress)
    beds.states.append(state)
    address = {h["name"]: h["address"] for h in state["hosts"]}
    assert handle(state, "vm-1").pid == first.pid  # kept, not rebooted
    assert (await ssh(state, "vm-1", "getent hosts server-2")).split() == [address["server-2"], "server-2"]
    assert (await ssh(state, "server-2", "getent hosts vm-1")).split() == [address["vm-1"], "vm-1"]
    await tb.release(state, beds.progress)
