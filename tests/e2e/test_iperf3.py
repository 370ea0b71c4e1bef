"""examples/iperf3 end to end: a real iperf3 run between two local hosts."""

import os
import re
import shutil

import pytest

from ..helpers import IS_ROOT, namespaces_of
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


def group_alive(pgid: int) -> bool:
    """Some process of the group runs (zombies do not count: PID 1 here may reap late)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


def test_iperf3_measures_and_only_the_client_reruns(tmp_path):
    stack = Stack(tmp_path, example="iperf3", config={"duration": "1"})
    try:
        stack.up()
        outputs = stack.outputs()
        assert isinstance(outputs["bandwidth_gbps"], (int, float)) and outputs["bandwidth_gbps"] > 0
        assert '"sum_received"' in outputs["iperf3_report"]
        assert stack.preview_ops() == {}, "a second up must be a no-op"
        client_started = stack.resource("iperf3-client")["outputs"]["results"][0]["startedAt"]
        server_step = stack.resource("iperf3-server")["outputs"]
        server_group = int(re.search(r"process group (\d+)", server_step["results"][0]["stdout"]).group(1))
        assert group_alive(server_group), "the background server outlives its step"
        # the server step completed once iperf3 listened, so the client ran once, with no retry loop
        assert re.search(r"; ready after [\d.]+ s \(TCP port 5201 listening\)$", server_step["results"][0]["stdout"])
        client_step = stack.resource("iperf3-client")["outputs"]
        addresses = stack.reservation()["outputs"]["addresses"]
        assert outputs["server_address"] == addresses["experiment"]["server"][0] and outputs["server_address"].startswith("198.18.")
        assert client_step["create"] == "iperf3 -c {{ server_ip }} -t {{ duration }} -J" and "seq" not in client_step["create"]
        assert set(client_step["renderedHashes"]) == {"client-1"}

        stack.run("config", "set", "duration", "2")
        assert stack.preview_ops() == {"iperf3-client": "update"}
        stack.up()
        report = stack.outputs()["iperf3_report"]
        assert re.search(r'"duration":\s*2\b', report), report[:400]
        assert stack.resource("iperf3-server")["outputs"]["results"] == server_step["results"], "the server step did not re-run"
        assert stack.resource("iperf3-client")["outputs"]["results"][0]["startedAt"] != client_started
        reservation_id = stack.reservation()["id"]
    finally:
        stack.destroy()
    assert stack.resources() == []
    assert namespaces_of(reservation_id) == set()
    assert not group_alive(server_group), "destroy stops the background server"


def test_iperf3_on_vms_with_the_stack_local_vm(tmp_path):
    """The same program on the stack local-vm: the machines are QEMU VMs, nothing else changes."""
    if not os.path.exists("/bin/busybox") or not shutil.which("qemu-system-x86_64") or not shutil.which("mmdebstrap"):
        pytest.skip("VMs need QEMU, mmdebstrap and busybox-static (`make setup`)")
    stack = Stack(tmp_path, example="iperf3", stack="local-vm", config={"duration": "2"})
    try:
        stack.up()
        outputs = stack.outputs()
        assert outputs["bandwidth_gbps"] > 0 and outputs["server_address"].startswith("198.18."), outputs
        hosts = stack.reservation()["outputs"]["testbedState"]["local"]["hosts"]
        assert {h["kind"] for h in hosts.values()} == {"vm"} and len(hosts) == 2, hosts
    finally:
        stack.destroy()
    assert stack.resources() == []
