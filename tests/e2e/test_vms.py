"""VM machine groups end to end: the real engine, real QEMU (TCG here), tests/e2e/projects/vms.

One namespace host and two VMs (`kind: vm`, flavour tiny) on an experiment network, beside a
second reservation of namespace hosts only. Commands run on both kinds: `uname -r` tells the
VM's own Debian kernel from this machine's, a ping crosses the experiment network, and netem,
which this machine's kernel lacks, works on the VM (a 50 ms delay seen from the namespace host).
The VM is reached with its pinned host key; killed outside Pulumi, refresh notices it and up
restarts it; destroy leaves no QEMU, namespace, tap, overlay or run dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ..helpers import IS_ROOT, namespaces_of
from .stack import Stack
from .test_local_stack import hostname_via
from .test_monitoring import check_backup, check_deployed, check_measurement

pytestmark = pytest.mark.skipif(
    not IS_ROOT
    or any(shutil.which(t) is None for t in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "cpio", "depmod"))
    or not os.path.exists("/bin/busybox"),
    reason="VMs need root, QEMU, mmdebstrap, busybox-static, cpio, kmod (`make setup`)",
)


@pytest.fixture
def vms(tmp_path):
    s = Stack(tmp_path, example="vms", config={"vms": "2"})
    yield s
    s.destroy()


def by_host(results: list[dict]) -> dict[str, dict]:
    return {r["host"]: r for r in results}


def min_rtts(ping_output: str) -> list[float]:
    """The minimum round trips of `ping`s' summary lines (`rtt min/avg/max/mdev = a/b/c/d ms`)."""
    return [float(m) for m in re.findall(r"min/avg/max/mdev = ([0-9.]+)/", ping_output)]


def is_qemu(pid: int) -> bool:
    """Whether `pid` is a QEMU that has not exited (a zombie is gone)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return comm.startswith("qemu-system") and state != "Z"


def test_vm_group_beside_a_namespace_host(vms):
    up = vms.up()
    assert "SSH ready on 3/3 hosts" in up.stdout, up.stdout
    assert "TCG" in up.stdout or "kvm" in up.stdout, up.stdout  # the accelerator is said

    out = vms.outputs(secrets=True)
    assert [h["name"] for h in out["hosts"]] == ["server-1", "vm-1", "vm-2"]
    kernels = by_host(out["kernels"])
    assert kernels["server-1"]["stdout"] == os.uname().release  # the namespace host shares this kernel
    for vm in ("vm-1", "vm-2"):
        assert kernels[vm]["stdout"].startswith("6.1.") and kernels[vm]["stdout"] != os.uname().release
    assert out["other"] == os.uname().release  # the plain reservation beside it

    # the experiment network joins both kinds
    for ping in out["ping"]:
        assert ping["rc"] == 0 and " 0% packet loss" in ping["stdout"], ping
    # netem on the VMs' eth1: the namespace host sees the delay on its pings to each VM
    for netem in out["netem"]:
        assert netem["rc"] == 0 and "netem" in netem["stdout"] and "delay 50ms" in netem["stdout"], netem
    rtts = min_rtts(out["delayed"])
    assert len(rtts) == 2 and min(rtts) >= 50.0, out["delayed"]

    # the VM's host key is pinned in known_hosts: strict checking passes
    assert hostname_via(vms.resource("nodes")["outputs"]["ssh"], out["key"], out["hosts"][1]) == "vm-1"

    state = vms.resource("nodes")["outputs"]["testbedState"]["local"]
    handle = state["hosts"]["vm-1"]["vm"]
    assert state["hosts"]["vm-1"]["kind"] == "vm" and is_qemu(handle["pid"])
    vms.run("preview", "--expect-no-changes")

    # the VM dies outside Pulumi: refresh notices, up restarts it (a new QEMU, a new pinned key)
    os.kill(handle["pid"], signal.SIGKILL)
    vms.run("refresh", "--yes")
    assert [h["name"] for h in vms.resource("nodes")["outputs"]["hosts"]] == ["server-1", "vm-2"]
    repair = vms.up()
    assert "repairing vm-1" in repair.stdout, repair.stdout
    repaired = vms.resource("nodes")["outputs"]
    new_handle = repaired["testbedState"]["local"]["hosts"]["vm-1"]["vm"]
    assert new_handle["pid"] != handle["pid"] and is_qemu(new_handle["pid"])
    assert hostname_via(repaired["ssh"], out["key"], repaired["hosts"][1]) == "vm-1"
    handles = [h["vm"] for h in repaired["testbedState"]["local"]["hosts"].values() if h.get("kind") == "vm"]
    assert len(handles) == 2 and all(is_qemu(h["pid"]) for h in handles)

    run_dir = Path(state["runDir"])
    switch = state["switchNamespace"]
    reservation_id = vms.resource("nodes")["id"]
    vms.run("destroy", "--yes", "--skip-preview")
    assert not [h["pid"] for h in handles if is_qemu(h["pid"])], "a QEMU outlived destroy"
    assert namespaces_of(reservation_id) == set()
    assert not run_dir.exists()  # with the VM's overlay (disk.qcow2) in it
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout
    assert leftover == "", f"processes of the destroyed reservation still run: {leftover}"
    taps = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout)
    tap_names = {t for h in handles for t in h["taps"]}
    assert not [link["ifname"] for link in taps if link["ifname"] in tap_names], "a VM's tap in this machine's namespace"
    assert switch not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_netem_a_play_and_a_fetch_on_a_vm(tmp_path):
    s = Stack(tmp_path, example="vmnetem")
    try:
        s.up()
        out = s.outputs()
        # a delay: the VM's kernel has netem; both directions see it (validated by the Netem itself)
        assert len(out["validation"]) == 2 and all(v["rtt_min_ms"] >= 20.0 for v in out["validation"]), out["validation"]
        assert out["registered"]["client-1"]["k"]["stdout"].startswith("6.1."), out["registered"]
        # a Fetch from the VM: the bytes the VM wrote, its sum checked here too
        [fetched] = out["fetched"]
        local = s.dir / "results" / fetched["path"]
        assert fetched["host"] == "client-1" and fetched["size"] == 300000 == local.stat().st_size, fetched
        assert hashlib.sha256(local.read_bytes()).hexdigest() == fetched["sha256"] == out["written"].split()[0]
        state = s.resource("nodes")["outputs"]["testbedState"]["local"]
        pid = state["hosts"]["client-1"]["vm"]["pid"]
    finally:
        s.destroy()
    assert not is_qemu(pid)
    assert not Path(state["runDir"]).exists()


def test_monitoring_with_agents_on_vms(tmp_path):
    """Monitoring unchanged on VMs: node-exporter (in the VM image) on VM clients, Prometheus on a
    namespace host; every target healthy, iperf3's traffic from a VM in the collector's series, a
    VM added and scraped, a MetricsBackup fetched home; destroy stops the agents with their VMs."""
    s = Stack(tmp_path, example="monitoring", config={"testbed:backend": "local", "clientKind": "vm"})
    s.env["PULUMI_TESTBED_CACHE"] = str(tmp_path / "c")  # the CLI's keys: private to the test
    try:
        s.up()
        check_deployed(s, "local")
        check_measurement(s)
        s.run("config", "set", "clients", "2")  # a second VM: its agent starts, the collector reloads
        assert "reloaded its configuration" in s.up().stdout
        targets = {t["host"]: t["health"] for t in s.outputs()["monitoring"]["targets"] if t["job"] == "node"}
        assert targets == {"client-1": "up", "client-2": "up", "server-1": "up"}, targets
        state = s.resource("nodes")["outputs"]["testbedState"]["local"]
        assert {n: h.get("kind", "host") for n, h in state["hosts"].items()} == {"server-1": "host", "client-1": "vm", "client-2": "vm"}
        check_backup(s, "local")
        qemus = [h["vm"]["pid"] for h in state["hosts"].values() if h.get("kind") == "vm"]
    finally:
        s.destroy()
    assert s.resources() == [] and not [p for p in qemus if is_qemu(p)]
