"""`kind: vm` on the g5k backend under the real Pulumi engine, against the emulator with real
hosts: the job asks for the nodes the VMs' size takes and a slash_22, QEMU boots the project's
image on the emulated node (TCG here), each VM gets its subnet address from the site's DHCP by
its MAC and is reached through the gateway; refresh notices a VM that died, up restarts it in
the same job,
destroy stops every QEMU before the jobs go."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess

import pytest

from testbed_provider.testbeds.g5k.vms import mac_for

from ..e2e.stack import Stack
from .conftest import CLOCK_SPEED, DEPLOY_SECONDS, EmulatorProcess

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or any(shutil.which(t) is None for t in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "cpio", "depmod", "dnsmasq", "sshd")),
    reason="needs root, QEMU, mmdebstrap (the VM image), dnsmasq and openssh",
)


def qemus(vm: str = "") -> list[str]:
    """The pids of the project's QEMUs on emulated nodes (which share this machine's /tmp)."""
    found = subprocess.run(["pgrep", "-f", f"/tmp/tb-vms/[^/]+/vm-{vm}"], capture_output=True, text=True)
    return found.stdout.split()


def run_dirs() -> list[str]:
    return [d for d in os.listdir("/tmp/tb-vms") if not d.startswith("image-")] if os.path.isdir("/tmp/tb-vms") else []


def test_vms_on_g5k_nodes_up_refresh_repair_destroy(tmp_path, monkeypatch):
    from g5k_emulator.testing import grid5000_client

    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        stack = Stack(
            tmp_path,
            example="g5kvms",
            stack="g5k",
            config={
                "testbed:backend": "g5k",
                "testbed:g5kConfigFile": emu.config_file,
                "testbed:g5kSite": "lyon",
                "testbed:g5kSshProxyCommand": info["proxyCommand"],
            },
        )
        lyon = grid5000_client(emu).sites["lyon"]
        try:
            preview = stack.run("preview")
            # three tiny VMs fit one taurus node (24 threads, 32 GB): two nodes in all
            assert "the reservation (2 node(s), 3 VM(s) on 1 of them) could start now on lyon" in preview.stdout + preview.stderr

            up = stack.up()
            assert "3/3 VMs SSH-ready" in up.stdout + up.stderr
            out = stack.outputs()
            [job] = [lyon.jobs[j.uid].to_dict() for j in lyon.jobs.list() if j.state == "running"]
            assert "slash_22=1" in job["command"] or job["resources_by_type"].get("subnets")
            [subnet] = job["resources_by_type"]["subnets"]
            vms = {h["name"]: h for h in out["hosts"] if h["name"].startswith("vm-")}
            assert sorted(vms) == ["vm-1", "vm-2", "vm-3"]
            who = {r["host"]: r["stdout"].split() for r in out["who"]}
            for name, host in vms.items():
                assert ipaddress.ip_address(host["address"]) in ipaddress.ip_network(subnet)
                kernel, hostname, mac = who[name]
                assert (hostname, mac) == (name, mac_for(host["address"]))  # the site's DHCP gave the MAC's address
            plain = next(h for h in out["hosts"] if not h["name"].startswith("vm-"))
            assert plain["name"] == "orion-1" and who[plain["name"]][0] != who["vm-1"][0]  # a node's kernel, not the image's
            assert sorted(out["addresses"]["vms"]["vm"]) == sorted(h["address"] for h in vms.values())
            assert out["reached"].split() == ["vm-2", "vm-3"]
            resolved = {r["host"]: r["stdout"].strip() for r in out["names"] if r["host"] != "vm-3"}
            assert resolved == {h: vms["vm-3"]["address"] for h in ["vm-1", "vm-2", "orion-1"]}
            assert len(qemus()) == 3
            assert stack.preview_ops() == {}, "a second up is a no-op"

            # a VM dies outside Pulumi: refresh sees it, up restarts it on its node
            subprocess.run(["kill", "-9", *qemus("2/")], check=True)
            stack.run("refresh", "--yes")
            assert sorted(h["name"] for h in stack.resource("nodes")["outputs"]["hosts"]) == ["orion-1", "vm-1", "vm-3"]
            repair = stack.up()
            assert "restarting vm-2 on taurus-1.lyon.grid5000.fr (the jobs are kept)" in repair.stdout + repair.stderr
            assert [j.uid for j in lyon.jobs.list() if j.state == "running"] == [job["uid"]], "the job was kept"
            out = stack.outputs()
            assert sorted(h["name"] for h in out["hosts"] if h["name"].startswith("vm-")) == ["vm-1", "vm-2", "vm-3"]
            assert out["reached"].split() == ["vm-2", "vm-3"]
            restarted = next(r for r in out["names"] if r["host"] == "vm-2")
            assert restarted["stdout"].strip() == vms["vm-3"]["address"]  # the restarted VM names the others too
        finally:
            stack.destroy()
        assert stack.resources() == []
        assert qemus() == [] and run_dirs() == [], "destroy left VMs behind"
        assert all(j.to_dict()["state"] in ("error", "terminated") for j in lyon.jobs.list())


def test_wan_latency_between_vms_on_two_sites(tmp_path, monkeypatch):
    """examples/wan-latency's stack `g5k-vm` unchanged: a VM at lyon and one at nancy, their
    `experiment` network their subnet addresses (routed between the sites), 50 ms each way and
    100 Mbit/s between them by a Netem inside the VMs."""
    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        stack = Stack(
            tmp_path,
            example="wan-latency",
            stack="g5k-vm",
            config={"testbed:g5kConfigFile": emu.config_file, "testbed:g5kSshProxyCommand": info["proxyCommand"], "duration": "5"},
        )
        try:
            stack.up()
            out = stack.outputs()
            assert sorted(out["hosts"]) == ["site-a-1", "site-b-1"]
            assert within(out["rtt_ms"]["avg"], 100.0, 0.10, 5.0), out["rtt_ms"]
            assert within(out["bandwidth_mbps"], 100.0 * 1448 / 1514, 0.10), out["bandwidth_mbps"]
            for m in out["validation"]:
                assert m["expected_rtt_ms"] == 100.0 and within(m["rtt_avg_ms"], 100.0, 0.10, 5.0), m
            print(f"g5k VMs lyon→nancy: rtt {out['rtt_ms']}, iperf3 {out['bandwidth_mbps']} Mbit/s, validation {out['validation']}")
            hosts = {h["name"]: h for h in stack.resource("nodes")["outputs"]["testbedState"]["hosts"]}
            assert {h["site"] for h in hosts.values()} == {"lyon", "nancy"}
            assert out["server_address"] == hosts["site-b-1"]["address"]  # the subnet address is the network's
        finally:
            stack.destroy()
        assert stack.resources() == [] and qemus() == []


def within(measured: float, asked: float, relative: float, absolute: float = 0.0) -> bool:
    return abs(measured - asked) <= asked * relative + absolute
