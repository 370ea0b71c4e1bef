"""The g5k backend under the real Pulumi engine (CLI, language host, SDK) against the emulator."""

from __future__ import annotations

import os
import re

import pytest

from ..e2e.stack import Stack
from .conftest import CLOCK_SPEED, DEPLOY_SECONDS, EmulatorProcess, job_state


@pytest.fixture
def fast_poll(monkeypatch):
    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")


def test_job_deployment_vlan_preview_up_update_refresh_destroy(tmp_path, fast_poll):
    with EmulatorProcess(
        tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=False, deploy_seconds=DEPLOY_SECONDS, users=["alice:pw-7Hq2-secret"]
    ) as emu:
        stack = Stack(
            tmp_path,
            example="g5kjob",
            stack="g5k",
            config={"testbed:backend": "g5k", "testbed:g5kUri": emu.url, "testbed:g5kUsername": emu.username},
        )
        stack.run("config", "set", "--secret", "testbed:g5kPassword", emu.password)
        try:
            preview = stack.run("preview", "--diff")
            assert "{cluster='taurus'}/nodes=2+{type='kavlan'}/vlan=1,walltime=1:00:00" in preview.stdout
            assert "could start now on lyon" in preview.stdout + preview.stderr  # the forecast from the site's status, in the CLI
            assert emu.control("GET", "calls")["calls"].get("POST /sites/{site}/jobs") is None
            stack.up()
            out = stack.outputs()
            assert len(out["nodes"]) == 2 and sorted(out["deployed"]) == sorted(out["nodes"])
            assert all("-eth1-kavlan-" in n for n in out["vlanNames"])
            assert emu.password not in stack.state_text()  # the secret password is encrypted in state
            assert stack.preview_ops() == {}, "a second up is a no-op"

            stack.run("config", "set", "walltime", "2:00:00")
            assert stack.preview_ops() == {"job": "update"}  # in place, nothing downstream replaced
            stack.up()
            assert stack.outputs()["walltimeSeconds"] == 7200

            emu.control("POST", f"sites/lyon/jobs/{out['uid']}/kill")  # the job dies outside Pulumi
            emu.wait_for(lambda: job_state(emu, "lyon", out["uid"]) == "error")
            stack.run("refresh", "--yes", "--skip-preview")
            assert {r["type"] for r in stack.resources()} & {"testbed:g5k:Job", "testbed:g5k:Deployment"} == set()
            stack.up()  # resubmits
            assert stack.outputs()["uid"] != out["uid"]
        finally:
            stack.destroy()
        assert stack.resources() == []
        alive = [j for j in _jobs(emu) if j["state"] not in ("error", "terminated")]
        assert alive == [], "destroy left jobs behind"


def _jobs(emu):
    from g5k_emulator.testing import grid5000_client

    return [j.to_dict() for j in grid5000_client(emu).sites["lyon"].jobs.list()]


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_iperf3_example_runs_unchanged_on_the_g5k_backend(tmp_path, fast_poll):
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts"):
            pytest.skip("this emulator build has no real hosts")
        stack = Stack(
            tmp_path,
            example="iperf3",
            stack="g5k",
            config={
                "testbed:backend": "g5k",
                "testbed:g5kConfigFile": emu.config_file,
                "testbed:g5kSite": "lyon",
                "testbed:g5kSshProxyCommand": info["proxyCommand"],
                "duration": "1",
            },
        )
        try:
            stack.up()
            out = stack.outputs()
            assert out["bandwidth_gbps"] > 0
            assert out["server_address"].startswith("198.19.")  # the vlan address of the server's eth1
        finally:
            stack.destroy()
        assert stack.resources() == []
        assert all(j["state"] in ("error", "terminated") for j in _jobs(emu))


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_iperf3_across_two_sites_over_a_kavlan_global_vlan(tmp_path, fast_poll):
    import ipaddress

    from g5k_emulator.testing import grid5000_client

    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts"):
            pytest.skip("this emulator build has no real hosts")
        # the stack's own config comes from the example's Pulumi.g5k.yaml (server lyon/taurus, client nancy/grisou)
        stack = Stack(
            tmp_path,
            example="iperf3-two-sites",
            stack="g5k",
            config={"testbed:g5kConfigFile": emu.config_file, "testbed:g5kSshProxyCommand": info["proxyCommand"], "duration": "1"},
        )
        gk = grid5000_client(emu)
        try:
            stack.up()
            out = stack.outputs()
            assert out["bandwidth_gbps"] > 0
            assert sorted(out["sites"].values()) == [["client"], ["server"]]
            [lyon], [nancy] = (
                [gk.sites[s].jobs[j.uid].to_dict() for j in gk.sites[s].jobs.list() if j.state == "running"] for s in ("lyon", "nancy")
            )
            [global_vlan] = [int(v) for v in lyon["resources_by_type"]["vlans"]]  # the home site's job holds it
            assert global_vlan >= 10 and not (nancy.get("resources_by_type") or {}).get("vlans")
            cidr = gk.sites["lyon"].to_dict()["kavlans"][str(global_vlan)]["network"]
            assert ipaddress.ip_address(out["server_address"]) in ipaddress.ip_network(cidr)
            client_eth1 = next(n for n in gk.sites["nancy"].vlans[str(global_vlan)].nodes.list())
            assert client_eth1.uid.endswith("-eth1.nancy.grid5000.fr")
            assert lyon["scheduled_at"] == nancy["scheduled_at"] and lyon["scheduled_at"]
            assert min(lyon["started_at"], nancy["started_at"]) >= lyon["scheduled_at"]
            assert abs(lyon["started_at"] - nancy["started_at"]) <= 600  # both launched at the common start
        finally:
            stack.destroy()
        assert stack.resources() == []
        for site in ("lyon", "nancy"):
            assert all(j.to_dict()["state"] in ("error", "terminated") for j in gk.sites[site].jobs.list())


def test_create_timeout_keeps_the_queued_job_and_the_next_up_finishes_it(tmp_path, fast_poll):
    from g5k_emulator.testing import grid5000_client

    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=False, deploy_seconds=DEPLOY_SECONDS) as emu:
        gk = grid5000_client(emu)
        blocker = gk.sites["lyon"].jobs.create({"resources": "{cluster='taurus'}/nodes=14", "command": "sleep infinity", "name": "other"})
        stack = Stack(
            tmp_path,
            example="g5kjob",
            stack="g5k",
            config={"testbed:backend": "g5k", "testbed:g5kConfigFile": emu.config_file, "createTimeout": "3s"},
        )
        try:
            failed = stack.run("up", "--yes", "--skip-preview", check=False)
            assert failed.returncode != 0 and "kept in the stack" in failed.stdout + failed.stderr
            [job] = [r for r in stack.resources() if r["type"] == "testbed:g5k:Job"]
            assert job["outputs"]["state"] == "waiting" and job.get("initErrors")
            uid = job["outputs"]["uid"]
            blocker.delete()
            stack.up()  # the engine updates the half-created job: we wait for it again
            out = stack.outputs()
            assert out["uid"] == uid and len(out["deployed"]) == 2
        finally:
            stack.destroy()
        assert stack.resources() == []
        assert all(j["state"] in ("error", "terminated") for j in _jobs(emu))


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_myperf_lifecycle_on_the_g5k_backend(tmp_path, fast_poll):
    """examples/myperf's CLI, unchanged, on a `g5k` stack: the same lifecycle as on the local one."""
    import subprocess
    import sys

    from ..helpers import ROOT

    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts"):
            pytest.skip("this emulator build has no real hosts")
        stack = Stack(
            tmp_path,
            example=str(ROOT / "examples" / "myperf"),
            stack="g5k",
            config={
                "testbed:g5kConfigFile": emu.config_file,
                "testbed:g5kSite": "lyon",
                "testbed:g5kSshProxyCommand": info["proxyCommand"],
            },
        )

        def myperf(*args: str) -> str:
            proc = subprocess.run(
                [sys.executable, str(stack.dir / "myperf.py"), *args],
                cwd=stack.dir,
                env=stack.env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, f"myperf {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
            return proc.stdout

        try:
            up = myperf("g5k")
            assert "submitting" in up and "iperf3-server-1: create done" in up  # progress from the g5k backend
            bench = myperf("bench", "-t", "1")
            assert re.search(r"^(taurus|nova|orion)-\d+: [\d.]+ Gbit/s$", bench, re.M), bench  # a node of lyon
            saved = myperf("backup")
            assert re.search(r"^(\S+): \1/results/\S+\.json \(\d+ bytes", saved, re.M), saved
            myperf("destroy")
        finally:
            stack.destroy()
        assert all(j["state"] in ("error", "terminated") for j in _jobs(emu))
