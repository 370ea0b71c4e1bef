"""Kadeploy through python-grid5000: submit, poll, results, injected failures, refusals."""

from __future__ import annotations

import time

import pytest
import requests
from grid5000.exceptions import Grid5000CreateError, Grid5000GetError

from .conftest import client_as, wait_state


def wait_status(dep, emu, wanted=("terminated", "error", "canceled"), step=30, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        dep.refresh()
        if dep.status in wanted:
            return dep
        assert time.monotonic() < deadline, f"deployment stayed {dep.status}"
        emu.advance(step)
        time.sleep(0.02)


@pytest.fixture
def deploy_job(gk, emu):
    site = gk.sites["rennes"]
    job = site.jobs.create(
        {"command": "sleep 31536000", "types": ["deploy"], "resources": "{cluster='paravance'}/nodes=3,walltime=2:00:00"}
    )
    return wait_state(job, "running", emu, step=5)


def test_deployment_processes_for_minutes_then_terminates_ok(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    dep = site.deployments.create(
        {
            "environment": "debian12-min",
            "nodes": deploy_job.assigned_nodes,
            "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheEmulatorTest alice@x",
            "partition_number": 3,
        }
    )
    assert dep.status == "processing" and dep.uid.startswith("D-")
    assert dep.key.startswith("https://") and not hasattr(dep, "partition_number")
    assert not hasattr(dep, "result")
    emu.advance(60)
    dep.refresh()
    assert dep.status == "processing"  # minutes, not seconds
    wait_status(dep, emu)
    assert dep.status == "terminated"
    assert {n: r["state"] for n, r in dep.result.items()} == {n: "OK" for n in deploy_job.assigned_nodes}
    listed = site.deployments.list(user="alice")
    assert [d.uid for d in listed] == [dep.uid]


def test_injected_failures_give_ko_nodes_and_a_retry_succeeds(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    bad = deploy_job.assigned_nodes[1]
    emu.control("POST", "deploy-failures", {"nodes": [bad], "times": 1})
    dep = wait_status(site.deployments.create({"environment": "debian11-min", "nodes": deploy_job.assigned_nodes}), emu)
    assert dep.status == "terminated"
    assert dep.result[bad]["state"] == "KO"
    assert [n for n, r in dep.result.items() if r["state"] == "OK"] == sorted(set(deploy_job.assigned_nodes) - {bad})
    retry = wait_status(site.deployments.create({"environment": "debian11-min", "nodes": [bad]}), emu)
    assert retry.result[bad]["state"] == "OK"


def test_deployment_refusals(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    nodes = deploy_job.assigned_nodes
    cases = [
        ({"environment": "debian12-min"}, "The deployment you are trying to submit is not valid"),
        ({"environment": "debian12-min", "nodes": []}, "The deployment you are trying to submit is not valid"),
        ({"nodes": nodes}, "The deployment you are trying to submit is not valid"),
        ({"environment": "windows95", "nodes": nodes}, "Cannot launch deployment"),
        ({"environment": "debian12-min", "nodes": ["paravance-40.rennes.grid5000.fr"]}, "Cannot launch deployment"),
        ({"environment": "debian12-min", "nodes": ["nope.rennes.grid5000.fr"]}, "Cannot launch deployment"),
    ]
    for body, text in cases:
        with pytest.raises(Grid5000CreateError) as err:
            site.deployments.create(body)
        assert err.value.response_code == 400 and text in err.value.error_message, body
    # nodes of a job without the deploy type cannot be deployed
    plain = wait_state(site.jobs.create({"command": "x", "resources": "{cluster='parasilo'}/nodes=1"}), "running", emu, step=5)
    with pytest.raises(Grid5000CreateError):
        site.deployments.create({"environment": "debian12-min", "nodes": plain.assigned_nodes})
    # another user's nodes neither
    with pytest.raises(Grid5000CreateError):
        client_as(emu, "bob", "y").sites["rennes"].deployments.create({"environment": "debian12-min", "nodes": nodes})
    with pytest.raises(Grid5000GetError) as err:
        site.deployments["D-nope"]
    assert err.value.response_code == 404 and "Couldn't find Grid5000::Deployment with ID=D-nope" in err.value.error_message


def test_delete_cancels_a_processing_deployment_owner_only(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    dep = site.deployments.create({"environment": "debian12-min", "nodes": deploy_job.assigned_nodes})
    r = requests.delete(f"{emu.url}/sites/rennes/deployments/{dep.uid}", auth=("bob", "y"), timeout=10)
    assert r.status_code == 403
    site.deployments.delete(dep.uid)
    dep.refresh()
    assert dep.status == "canceled"
    site.deployments.delete(dep.uid)  # 202 again when already finished


def test_deployments_survive_a_restart(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    dep = site.deployments.create({"environment": "debian12-min", "nodes": deploy_job.assigned_nodes})
    emu.restart()
    from g5k_emulator.testing import grid5000_client

    again = grid5000_client(emu).sites["rennes"].deployments[dep.uid]
    assert again.status == "processing"
    assert wait_status(again, emu).status == "terminated"


def test_deployment_with_vlan_moves_the_primary_interfaces(gk, emu):
    site = gk.sites["rennes"]
    job = wait_state(
        site.jobs.create({"command": "x", "types": ["deploy"], "resources": "{cluster='parasilo'}/nodes=2+{type='kavlan-local'}/vlan=1"}),
        "running",
        emu,
        step=5,
    )
    vlan = job.resources_by_type["vlans"][0]
    dep = wait_status(site.deployments.create({"environment": "debian12-min", "nodes": job.assigned_nodes, "vlan": vlan}), emu)
    assert dep.status == "terminated" and dep.vlan == vlan
    assert {site.vlansnodes.get(n).vlan for n in job.assigned_nodes} == {vlan}


def test_nodes_being_deployed_are_refused_unless_ignored(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    nodes = deploy_job.assigned_nodes
    first = site.deployments.create({"environment": "debian12-min", "nodes": nodes[:2]})
    with pytest.raises(Grid5000CreateError) as err:
        site.deployments.create({"environment": "debian12-min", "nodes": nodes[1:]})
    assert err.value.response_code == 400 and nodes[1] in err.value.error_message
    second = site.deployments.create({"environment": "debian12-min", "nodes": nodes[1:], "ignore_nodes_deploying": True})
    assert second.status == "processing"
    assert wait_status(first, emu).status == "terminated"
    third = site.deployments.create({"environment": "debian12-min", "nodes": nodes[:1]})
    assert third.status == "processing"


def test_injected_workflow_error_and_released_nodes_end_in_error(gk, emu, deploy_job):
    site = gk.sites["rennes"]
    nodes = deploy_job.assigned_nodes
    emu.control("POST", "deploy-failures", {"nodes": [nodes[0]], "times": 1, "error": True})
    dep = wait_status(site.deployments.create({"environment": "debian12-min", "nodes": nodes}), emu)
    assert dep.status == "error" and "Kadeploy error" in dep.output and not hasattr(dep, "result")
    dep = site.deployments.create({"environment": "debian12-min", "nodes": nodes})
    deploy_job.delete()
    wait_state(deploy_job, "error", emu, step=5)
    dep = wait_status(dep, emu)
    assert dep.status == "error" and "released" in dep.output
