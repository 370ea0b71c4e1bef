"""The HTTP script of EnOSlib's G5k provider (the project's note §4), replayed with python-grid5000:
reuse by name, submission, polling, one vlan POST per node, deployment, destroy loop."""

from __future__ import annotations

import time

from g5k_emulator.testing import grid5000_client

JOB = {
    "name": "pulumi-test",
    "types": ["deploy", "origin=enoslib_g5k"],
    "resources": "{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1,walltime=01:00:00",
    "command": "sleep 31536000",
    "queue": "default",
}


def find_by_name(site):
    return site.jobs.list(name="pulumi-test", state="waiting,launching,running", user="alice")


def test_enoslib_init_reuse_and_destroy(start_emulator):
    # The clock runs at real speed and the waits move it (`advance`): at 600x the job's hour of
    # walltime was 6 s, which a slow machine spent before the script reused the job.
    emu = start_emulator()
    gk = grid5000_client(emu)
    emu.control("DELETE", "calls")
    # configuration and init
    assert "rennes" in [s.uid for s in gk.sites.list()]
    assert gk.sites["rennes"].clusters["paravance"].exotic is False
    site = gk.sites["rennes"]
    assert find_by_name(site) == []
    job = site.jobs.create(dict(JOB))
    deadline = time.monotonic() + 30
    while job.state != "running":
        assert job.state in ("waiting", "launching") and time.monotonic() < deadline
        emu.advance(5)
        time.sleep(0.05)
        job.refresh()
    vlan_id = str(job.resources_by_type["vlans"][0])
    for fqdn in sorted(job.assigned_nodes):
        short = fqdn.split(".")[0]
        node = site.clusters["paravance"].nodes[short]
        nic = sorted(
            (a for a in node.network_adapters if a["mountable"] and not a["mounted"] and a["interface"] == "Ethernet"),
            key=lambda a: a["device"],
        )[0]
        assert nic["device"] == "eth1"
        vlan = site.vlans[vlan_id]
        address = f"{short}-{nic['device']}.rennes.grid5000.fr"
        assert vlan.nodes.submit([address])[address]["status"] != "failure"
    dep = site.deployments.create({"environment": "debian12-min", "key": "ssh-ed25519 AAAA alice", "nodes": sorted(job.assigned_nodes)})
    while dep.status not in ("terminated", "error"):
        emu.advance(30)
        time.sleep(0.05)
        dep.refresh()
    assert all(r["state"] == "OK" for r in dep.result.values())
    assert site.kavlans[vlan_id]["network"] and site.servers["dns"].network_adapters["default"]["ip"]
    assert isinstance(site.ipv6["site_index"], int)

    # a second run reuses the job by name
    hits = find_by_name(gk.sites["rennes"])
    assert [h.uid for h in hits] == [job.uid]
    hits[0].refresh()
    assert hits[0].state == "running"

    # destroy: delete, then poll every second until the state leaves running/waiting/launching
    for hit in find_by_name(gk.sites["rennes"]):
        hit.refresh()
        hit.delete()
        while hit.state in ("running", "waiting", "launching"):
            time.sleep(0.05)
            hit.refresh()
        assert hit.state in ("finishing", "error")
    assert find_by_name(gk.sites["rennes"]) == []
    calls = emu.control("GET", "calls")["calls"]
    assert calls["POST /sites/{site}/jobs"] == 1 and calls["POST /sites/{site}/vlans/{vlan}/nodes"] == 2
    assert calls["POST /sites/{site}/deployments"] == 1 and calls["DELETE /sites/{site}/jobs/{uid}"] == 1
