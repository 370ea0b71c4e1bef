"""KaVLAN through python-grid5000: vlan listing, moves of primary and secondary interfaces,
rights, and the codes of bad requests."""

from __future__ import annotations

import pytest
import requests
from grid5000.exceptions import Grid5000GetError

from .conftest import client_as, wait_state


@pytest.fixture
def vlan_job(gk, emu):
    job = gk.sites["rennes"].jobs.create(
        {
            "command": "sleep 31536000",
            "types": ["deploy"],
            "resources": "{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1,walltime=01:00:00",
        }
    )
    return wait_state(job, "running", emu, step=5)


def test_vlans_listing_and_types(gk):
    vlans = {v.uid: v.type for v in gk.sites["rennes"].vlans.list()}
    assert vlans["DEFAULT"] == "NULL"
    assert {vlans[str(i)] for i in (1, 2, 3)} == {"kavlan-local"}
    assert {vlans[str(i)] for i in range(4, 10)} == {"kavlan"}
    assert vlans["16"] == "kavlan-global" and vlans["11"] == "kavlan-global-remote"
    assert gk.sites["rennes"].vlans["4"].type == "kavlan"
    with pytest.raises(Grid5000GetError) as err:
        gk.sites["rennes"].vlans["42"]
    assert err.value.response_code == 404 and "Vlan 42 does not exist" in err.value.error_message


def test_secondary_interfaces_move_into_the_jobs_vlan(gk, vlan_job):
    site = gk.sites["rennes"]
    vlan_id = vlan_job.resources_by_type["vlans"][0]
    vlan = site.vlans[vlan_id]
    short = [n.split(".")[0] for n in vlan_job.assigned_nodes]
    addresses = [f"{s}-eth1.rennes.grid5000.fr" for s in short]
    result = vlan.nodes.submit([addresses[0]])  # EnOSlib: one POST per node
    assert result == {addresses[0]: {"status": "success", "message": "Successfully added to vlan"}}
    result = vlan.nodes.submit(addresses + ["nothere-eth1.rennes.grid5000.fr"])
    assert result[addresses[0]]["status"] == "unchanged" and result[addresses[0]]["message"] == "Node already in vlan"
    assert result[addresses[1]]["status"] == "success"
    assert result["nothere-eth1.rennes.grid5000.fr"] == {"status": "failure", "message": "Unknown node"}
    assert {n.uid for n in vlan.nodes.list()} == set(addresses)
    assert site.vlansnodes.get(addresses[0]).vlan == vlan_id
    assert site.vlansnodes.get(vlan_job.assigned_nodes[0]).vlan == "DEFAULT"  # the primary did not move
    assert site.vlansusers["alice"].vlans == [vlan_id]
    assert vlan.users["alice"].status == "authorized" and vlan.users["bob"].status == "unauthorized"
    # back to DEFAULT
    assert site.vlans["DEFAULT"].nodes.submit([addresses[1]])[addresses[1]]["status"] == "success"
    assert {n.uid for n in vlan.nodes.list()} == {addresses[0]}


def test_rights_come_from_a_running_job_holding_the_vlan(gk, emu, vlan_job):
    vlan_id = vlan_job.resources_by_type["vlans"][0]
    other = str(int(vlan_id) + 1)
    node = vlan_job.assigned_nodes[0]
    with pytest.raises(Grid5000GetError) as err:
        gk.sites["rennes"].vlans[other].nodes.submit([node])
    assert err.value.response_code == 403 and "Not enough privileges on Kavlan resources" in err.value.error_message
    with pytest.raises(Grid5000GetError) as err:
        client_as(emu, "bob", "y").sites["rennes"].vlans[vlan_id].nodes.submit([node])
    assert err.value.response_code == 403
    # someone else's node in my vlan: refused per node
    theirs = wait_state(
        client_as(emu, "bob", "y").sites["rennes"].jobs.create({"command": "x", "resources": "{cluster='parasilo'}/nodes=1"}),
        "running",
        emu,
        step=5,
    )
    result = gk.sites["rennes"].vlans[vlan_id].nodes.submit([theirs.assigned_nodes[0]])
    assert result[theirs.assigned_nodes[0]]["status"] == "failure"


def test_job_end_puts_interfaces_back_and_removes_rights(gk, emu, vlan_job):
    site = gk.sites["rennes"]
    vlan_id = vlan_job.resources_by_type["vlans"][0]
    address = vlan_job.assigned_nodes[0].replace(".rennes", "-eth1.rennes")
    site.vlans[vlan_id].nodes.submit([address])
    vlan_job.delete()
    wait_state(vlan_job, "error", emu, step=5)
    assert site.vlansnodes.get(address).vlan == "DEFAULT"
    assert site.vlansusers["alice"].vlans == []


def test_bad_requests_415_422_and_dhcpd(emu, vlan_job):
    vlan_id = vlan_job.resources_by_type["vlans"][0]
    url = f"{emu.url}/sites/rennes/vlans/{vlan_id}"
    auth = ("alice", "x")
    r = requests.post(f"{url}/nodes", data="[]", headers={"Content-Type": "text/plain"}, auth=auth, timeout=10)
    assert r.status_code == 415 and r.text == "Content-Type 'text/plain' is not supported"
    r = requests.post(f"{url}/nodes", json=[], auth=auth, timeout=10)
    assert r.status_code == 422 and r.text == "Missing node list"
    r = requests.post(f"{url}/nodes", json={"a": 1}, auth=auth, timeout=10)
    assert r.status_code == 422
    assert requests.put(f"{url}/dhcpd", json={"action": "start"}, auth=auth, timeout=10).status_code == 204
    assert requests.put(f"{url}/dhcpd", json={"action": "dance"}, auth=auth, timeout=10).status_code == 422
    r = requests.get(f"{emu.url}/sites/rennes/vlans/nodes/nope.rennes.grid5000.fr", auth=auth, timeout=10)
    assert r.status_code == 404 and r.text == "Unknown node 'nope.rennes.grid5000.fr'."


def test_vlans_survive_a_restart(gk, emu, vlan_job):
    vlan_id = vlan_job.resources_by_type["vlans"][0]
    address = vlan_job.assigned_nodes[1].replace(".rennes", "-eth1.rennes")
    gk.sites["rennes"].vlans[vlan_id].nodes.submit([address])
    emu.restart()
    from g5k_emulator.testing import grid5000_client

    assert grid5000_client(emu).sites["rennes"].vlansnodes.get(address).vlan == vlan_id


def test_vlans_nodes_post_returns_known_nodes(gk, vlan_job):
    site = gk.sites["rennes"]
    got = site.vlansnodes.submit(vlan_job.assigned_nodes + ["nope.rennes.grid5000.fr"])
    assert sorted(n.uid for n in got) == sorted(vlan_job.assigned_nodes)
    assert {n.vlan for n in got} == {"DEFAULT"}


def test_a_global_vlan_gathers_nodes_of_several_sites(gk, emu):
    rennes, nancy = gk.sites["rennes"], gk.sites["nancy"]
    owner = wait_state(
        rennes.jobs.create({"command": "x", "resources": "{cluster='paravance'}/nodes=1+{type='kavlan-global'}/vlan=1"}),
        "running",
        emu,
        step=5,
    )
    assert owner.resources_by_type["vlans"] == ["16"]
    remote = wait_state(nancy.jobs.create({"command": "x", "resources": "{cluster='grisou'}/nodes=1"}), "running", emu, step=5)
    address = remote.assigned_nodes[0].replace(".nancy", "-eth1.nancy")
    assert nancy.vlans["16"].type == "kavlan-global-remote"
    with pytest.raises(Grid5000GetError) as err:  # bob holds no job with that vlan
        client_as(emu, "bob", "y").sites["nancy"].vlans["16"].nodes.submit([address])
    assert err.value.response_code == 403
    assert nancy.vlans["16"].nodes.submit([address])[address]["status"] == "success"
    local = owner.assigned_nodes[0].replace(".rennes", "-eth1.rennes")
    assert rennes.vlans["16"].nodes.submit([local])[local]["status"] == "success"
    # one network for both sites, distinct addresses
    import ipaddress

    net = ipaddress.ip_network(rennes.kavlans["16"]["network"])
    grisou = nancy.clusters["grisou"].nodes[remote.assigned_nodes[0].split(".")[0]].kavlan["eth1"]["kavlan-16"]
    paravance = rennes.clusters["paravance"].nodes[owner.assigned_nodes[0].split(".")[0]].kavlan["eth1"]["kavlan-16"]
    assert ipaddress.ip_address(grisou) in net and ipaddress.ip_address(paravance) in net and grisou != paravance
    # the vlan's job ends: the remote interface returns to DEFAULT too
    owner.delete()
    wait_state(owner, "error", emu, step=5)
    assert nancy.vlansnodes.get(address).vlan == "DEFAULT"
