"""testbed:index:Reservation with `testbed:backend: g5k` over gRPC against the emulator.

Without emulated hosts nothing answers SSH: the reservation must fail at that step keeping the
jobs in state (partial), and destroy must delete them. With hosts (root), the full path runs:
jobs, deployment with the reservation's key, KaVLAN, SSH with pinned host keys, and a
Command-style ssh from the outputs alone.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import subprocess
import tempfile

import grpc
import pytest

from testbed_provider.protocol import codec

from ..plugin.engine import init_failure
from .conftest import CLOCK_SPEED, DEPLOY_SECONDS, FAST_POLL, EmulatorProcess, G5kPlugin, job_state

RES = "testbed:index:Reservation"
SPEC = {
    "machines": [{"roles": ["server"], "count": 1, "cluster": "taurus"}, {"roles": ["client"], "count": 1, "cluster": "taurus"}],
    "networks": [{"id": "experiment", "roles": ["server", "client"]}],
}


def test_check_rejects_local_only_inputs(plugin, emulator):
    plugin.configure_g5k(emulator)
    bad = {f.property: f.reason for f in plugin.check_res(RES, "r", {**SPEC, "networks": [{"id": "x", "cidr": "198.18.0.0/24"}]}).failures}
    assert set(bad) == {"machines[0].site", "machines[1].site", "networks[0].cidr"}
    plugin2 = G5kPlugin(env=FAST_POLL)
    try:
        plugin2.configure_g5k(emulator, g5kSite="lyon")
        assert not plugin2.check_res(RES, "r", SPEC).failures
        bad = {
            f.property: f.reason
            for f in plugin2.check_res(
                RES,
                "r",
                {
                    "machines": [
                        {"roles": ["a"], "count": 99, "cluster": "taurus"},
                        {"roles": ["b"], "count": 1, "cluster": "gros"},
                        {"roles": ["c"], "count": 1, "site": "rennes", "environment": "windows95"},
                    ]
                },
            ).failures
        }
        assert bad == {
            "machines[0].count": "99 nodes requested but cluster `taurus` has only 14",
            "machines[1].cluster": "no cluster `gros` at site `lyon` (clusters: nova, orion, pyxis, taurus)",
            "machines[2].environment": "no environment `windows95` at rennes (see GET /sites/rennes/environments)",
        }
    finally:
        plugin2.stop()


def test_check_compares_nodes_asked_anywhere_on_a_site_with_what_it_has(plugin, emulator):
    """A group without a cluster takes any cluster serving the queue: asking for more nodes than
    those have used to pass Check and fail at `pulumi up` (OAR: not enough resources)."""
    plugin.configure_g5k(emulator, g5kSite="lyon")
    bad = {
        f.property: f.reason
        for f in plugin.check_res(
            RES, "r", {"machines": [{"roles": ["a"], "count": 10, "cluster": "taurus"}, {"roles": ["b"], "count": 500}]}
        ).failures
    }
    assert set(bad) == {"machines[1].count"}, bad
    assert bad["machines[1].count"].startswith(
        "500 nodes requested at `lyon` on any cluster, but its clusters serving the job's queue have "
    )
    assert "left once the named clusters are served" in bad["machines[1].count"]
    assert not plugin.check_res(
        RES, "r", {"machines": [{"roles": ["a"], "count": 10, "cluster": "taurus"}, {"roles": ["b"], "count": 20}]}
    ).failures


def test_check_allows_one_network_across_sites_per_home_site(plugin, emulator):
    plugin.configure_g5k(emulator)
    machines = [
        {"roles": ["a"], "count": 1, "site": "lyon", "cluster": "taurus"},
        {"roles": ["b"], "count": 1, "site": "nancy", "cluster": "grisou"},
        {"roles": ["c"], "count": 1, "site": "rennes", "cluster": "paravance"},
    ]
    one = [{"id": "ab", "roles": ["a", "b"]}, {"id": "bc", "roles": ["b", "c"]}]  # homes lyon and nancy
    assert not plugin.check_res(RES, "r", {"machines": machines, "networks": one}).failures
    two = [{"id": "ab", "roles": ["a", "b"]}, {"id": "ac", "roles": ["a", "c"]}]  # both homed at lyon
    bad = {f.property: f.reason for f in plugin.check_res(RES, "r", {"machines": machines, "networks": two}).failures}
    assert set(bad) == {"networks[1]"}
    assert "kavlan-global" in bad["networks[1]"] and "networks[0]" in bad["networks[1]"]


def test_unreachable_hosts_keep_the_jobs_in_state_and_destroy_deletes_them(emulator):
    plugin = G5kPlugin(env={**FAST_POLL, "PULUMI_TESTBED_G5K_READY_TIMEOUT": "2"})
    try:
        plugin.configure_g5k(emulator, g5kSite="lyon", g5kSshProxyCommand="false")
        inputs = plugin.check_res(RES, "r", SPEC).inputs
        emulator.control("DELETE", "calls")
        with pytest.raises(grpc.RpcError) as err:
            plugin.create(RES, "r", inputs, timeout=120)
        assert "did not answer SSH" in err.value.details()
        partial = init_failure(err.value)
        assert partial is not None
        state = codec.decode(partial.properties)["testbedState"]
        [job] = state["g5k"]["jobs"]
        assert job["resources"] == (
            "{cluster='taurus' AND (eth_kavlan_count > 1)}/nodes=1+{cluster='taurus' AND (eth_kavlan_count > 1)}/nodes=1"
            "+{type='kavlan'}/vlan=1,walltime=1:00:00"
        )
        assert job_state(emulator, "lyon", job["uid"]) == "running"
        assert state["g5k"]["deployments"], "the nodes were deployed before SSH was tried"
        calls = emulator.control("GET", "calls")["calls"]  # node references: one list per cluster, no GET per node
        assert calls.get("GET /sites/{site}/clusters/{cluster}/nodes") == 1
        assert "GET /sites/{site}/clusters/{cluster}/nodes/{node}" not in calls
        plugin.delete(RES, "r", partial.id, partial.properties)
        assert job_state(emulator, "lyon", job["uid"]) == "error"
    finally:
        plugin.stop()


def ssh(outputs: dict, host: str, command: str) -> str:
    inventory = codec.reveal(outputs["inventory"])
    entry = next(h for h in inventory["hosts"] if h["name"] == host)
    with tempfile.TemporaryDirectory() as tmp:
        key, known = os.path.join(tmp, "id"), os.path.join(tmp, "known_hosts")
        with open(key, "w") as f:
            f.write(inventory["ssh"]["privateKey"])
        os.chmod(key, 0o600)
        with open(known, "w") as f:
            f.write(inventory["ssh"]["knownHosts"])
        argv = [
            "ssh",
            "-i",
            key,
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ProxyCommand={inventory['ssh']['proxyCommand']}",
            "-p",
            str(entry["port"]),
            f"{entry['user']}@{entry['address']}",
            command,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_full_reservation_on_emulated_hosts(tmp_path):
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts") or not info.get("proxyCommand"):
            pytest.skip("this emulator build has no real hosts")
        plugin = G5kPlugin(env=FAST_POLL)
        try:
            plugin.configure_g5k(emu, g5kSite="lyon", g5kSshProxyCommand=info["proxyCommand"])
            inputs = plugin.check_res(RES, "r", SPEC).inputs
            created = plugin.create(RES, "r", inputs, timeout=300)
            out = codec.decode(created.properties)
            assert out["backend"] == "g5k" and len(out["hosts"]) == 2
            assert set(out["roles"]) == {"server", "client"}
            for host in out["hosts"]:
                ipaddress.ip_address(host["address"])  # the production IP: no DNS needed behind the ProxyCommand
                assert host["name"].startswith("taurus-")
                assert [n["id"] for n in host["networks"]] == ["experiment"] and host["networks"][0]["interface"] == "eth1"
                assert ssh(out, host["name"], "echo ok") == "ok"
            assert out["ssh"]["knownHosts"].count("\n") == 2
            server, client = (next(h for h in out["hosts"] if role in h["roles"]) for role in ("server", "client"))
            assert client["networks"][0]["address"] in ssh(out, client["name"], "ip -4 -o addr show eth1")
            ssh(out, server["name"], f"nc -z -w2 {client['networks'][0]['address']} 22")  # the client's sshd, over the vlan
            [job] = codec.reveal(out["testbedState"])["g5k"]["jobs"]

            # more clients: OAR cannot grow a job, so the update releases it and reserves anew
            from pulumi.runtime.proto import provider_pb2

            bigger = {**SPEC, "machines": [SPEC["machines"][0], {**SPEC["machines"][1], "count": 2}]}
            news = plugin.check_res(RES, "r", bigger, olds=codec.decode(inputs)).inputs
            updated = plugin.stub.Update(
                provider_pb2.UpdateRequest(
                    id=created.id, urn=plugin.urn(RES, "r"), type=RES, olds=created.properties, old_inputs=inputs, news=news, timeout=300
                )
            )
            out2 = codec.decode(updated.properties)
            assert len(out2["hosts"]) == 3 and job_state(emu, "lyon", job["uid"]) == "error"
            for host in out2["hosts"]:
                assert ssh(out2, host["name"], "echo ok") == "ok"
            [job2] = codec.reveal(out2["testbedState"])["g5k"]["jobs"]

            # the job dies outside Pulumi: refresh (Read) says the reservation is gone
            emu.control("POST", f"sites/lyon/jobs/{job2['uid']}/kill")
            emu.wait_for(lambda: job_state(emu, "lyon", job2["uid"]) == "error")
            assert plugin.read(RES, "r", created.id, updated.properties, news).id == ""
            plugin.delete(RES, "r", created.id, updated.properties)  # tolerates the already killed job
            assert job_state(emu, "lyon", job2["uid"]) == "error"
        finally:
            plugin.stop()


def test_timeout_while_queued_keeps_the_job_and_destroy_deletes_it(emulator):
    from g5k_emulator.testing import grid5000_client

    gk = grid5000_client(emulator)
    blocker = gk.sites["lyon"].jobs.create({"resources": "{cluster='taurus'}/nodes=14", "command": "sleep infinity"})
    plugin = G5kPlugin(env=FAST_POLL)
    try:
        plugin.configure_g5k(emulator, g5kSite="lyon")
        inputs = plugin.check_res(RES, "q", SPEC).inputs
        with pytest.raises(grpc.RpcError) as err:
            plugin.create(RES, "q", inputs, timeout=3)
        assert "timed out after 3 s" in err.value.details()
        partial = init_failure(err.value)
        [job] = codec.decode(partial.properties)["testbedState"]["g5k"]["jobs"]
        assert job_state(emulator, "lyon", job["uid"]) == "waiting"
        plugin.delete(RES, "q", partial.id, partial.properties)
        assert job_state(emulator, "lyon", job["uid"]) == "error"
    finally:
        plugin.stop()
        blocker.delete()


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_two_sites_share_one_start_date(tmp_path):
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts"):
            pytest.skip("this emulator build has no real hosts")
        plugin = G5kPlugin(env=FAST_POLL)
        try:
            plugin.configure_g5k(emu, g5kSshProxyCommand=info["proxyCommand"])
            spec = {
                "machines": [
                    {"roles": ["server"], "count": 1, "site": "lyon", "cluster": "nova"},
                    {"roles": ["client"], "count": 1, "site": "nancy", "environment": "debian11-min"},
                ]
            }
            inputs = plugin.check_res(RES, "two", spec).inputs
            created = plugin.create(RES, "two", inputs, timeout=300)
            out = codec.decode(created.properties)
            jobs = codec.reveal(out["testbedState"])["g5k"]["jobs"]
            assert [j["site"] for j in jobs] == ["lyon", "nancy"]
            from g5k_emulator.testing import grid5000_client

            gk = grid5000_client(emu)
            starts = {gk.sites[j["site"]].jobs[j["uid"]].scheduled_at for j in jobs}
            assert len(starts) == 1, f"one common start date, got {starts}"
            for host in out["hosts"]:
                assert ssh(out, host["name"], "echo ok") == "ok"
            plugin.delete(RES, "two", created.id, created.properties)
            assert all(job_state(emu, j["site"], j["uid"]) == "error" for j in jobs)
        finally:
            plugin.stop()


def test_a_busy_site_moves_every_site_to_its_could_run_at_date(tmp_path):
    """The emulator's clock is driven, not raced: at real speed while the provider negotiates the
    common start (a new date it asks for is 240 s ahead: minutes, where a fast clock left it a
    fraction of a second), then moved to that start; the rounds no longer depend on the machine."""
    from g5k_emulator.testing import grid5000_client

    with EmulatorProcess(tmp_path / "emu", clock_speed=1, hosts=False, deploy_seconds=30) as emu:
        gk = grid5000_client(emu)
        blocker = gk.sites["lyon"].jobs.create({"resources": "{cluster='nova'}/nodes=23,walltime=1:00:00", "command": "sleep infinity"})
        emu.wait_for(lambda: (emu.advance(5), gk.sites["lyon"].jobs[blocker.uid].state == "running")[1])
        ends = gk.sites["lyon"].jobs[blocker.uid].started_at + 3600
        # The provider's first common start (its own clock + 60 s) is already past on the server's
        # clock, 600 s ahead (as a fast clock is after a while): OAR moves it, and the provider resubmits.
        emu.advance(600)
        # A slow provider or API changes nothing any more: every submission takes a second (at 600x
        # that was 600 s of the server's clock, past the 240 s the provider's new date is ahead).
        emu.control("POST", "faults", {"latency": 1.0, "count": 10, "methods": ["POST"], "path": "/jobs$"})
        plugin = G5kPlugin(env={**FAST_POLL, "PULUMI_TESTBED_G5K_READY_TIMEOUT": "1"})
        try:
            plugin.configure_g5k(emu, g5kSshProxyCommand="false")
            spec = {
                "machines": [{"roles": ["b"], "count": 1, "site": "nancy"}, {"roles": ["a"], "count": 1, "site": "lyon", "cluster": "nova"}]
            }
            inputs = plugin.check_res(RES, "busy", spec).inputs
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                creating = pool.submit(plugin.create, RES, "busy", inputs, timeout=120)

                def common_start() -> float | None:
                    """The start both sites' jobs wait for, once they do; None before (or when the create failed early)."""
                    if creating.done():
                        return -1.0
                    waiting = {
                        site: [j.scheduled_at for j in gk.sites[site].jobs.list() if j.state == "waiting" and j.uid != blocker.uid]
                        for site in ("nancy", "lyon")
                    }
                    starts = {s for site in waiting.values() for s in site}
                    return starts.pop() if all(waiting.values()) and len(starts) == 1 and min(waiting["lyon"]) >= ends else None

                start = emu.wait_for(common_start, timeout=60)
                assert start > 0, f"the create ended before both sites waited for one start: {creating.exception()}"
                emu.control("POST", "clock", {"speed": 60, "advance": max(0.0, start - emu.now())})  # let that start come
                error = creating.exception(timeout=120)
            assert isinstance(error, grpc.RpcError), error
            partial = init_failure(error)
            jobs = codec.decode(partial.properties)["testbedState"]["g5k"]["jobs"]
            assert [j["site"] for j in jobs] == ["nancy", "lyon"]
            earlier = [j for j in gk.sites["nancy"].jobs.list() if j.uid != jobs[0]["uid"]]
            # nancy's earlier jobs were deleted: the first because its start (the provider's clock + 60 s) was already past on
            # the server's clock (OAR moved it to now), the second when lyon said "could run at"
            assert len(earlier) == 2 and all(j.state == "error" for j in earlier)
            assert any("moved the common start" in m for m in plugin.engine.messages())
            starts = {gk.sites[j["site"]].jobs[j["uid"]].scheduled_at for j in jobs}
            assert starts == {start} and start >= ends
            assert any("resubmitting every site" in m for m in plugin.engine.messages())
            plugin.delete(RES, "busy", partial.id, partial.properties)
            alive = [j for s in ("lyon", "nancy") for j in gk.sites[s].jobs.list() if j.state not in ("error", "terminated")]
            assert [j.uid for j in alive if j.uid != blocker.uid] == []
        finally:
            plugin.stop()
