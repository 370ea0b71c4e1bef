"""testbed:g5k:Deployment and testbed:g5k:VlanAttachment over gRPC against the emulator."""

from __future__ import annotations

import grpc
import pytest

from testbed_provider.protocol import codec

from ..plugin.engine import init_failure
from .conftest import job_state

JOB, DEP, VLAN = "testbed:g5k:Job", "testbed:g5k:Deployment", "testbed:g5k:VlanAttachment"


def running_job(plugin, name: str, spec: dict):
    inputs = plugin.check_res(JOB, name, spec).inputs
    created = plugin.create(JOB, name, inputs)
    return created, codec.decode(created.properties)


def test_deployment_retries_ko_nodes_and_reports_failures(plugin, emulator):
    plugin.configure_g5k(emulator)
    job, out = running_job(plugin, "j", {"site": "rennes", "nodes": [{"count": 3}], "types": ["deploy"]})
    nodes = out["assignedNodes"]
    # first node fails once (retried OK), second fails on every attempt
    emulator.control("POST", "deploy-failures", {"nodes": [nodes[0]], "times": 1})
    emulator.control("POST", "deploy-failures", {"nodes": [nodes[1]], "times": 5})
    spec = {
        "site": "rennes",
        "jobUid": out["uid"],
        "environment": "debian12-min",
        "key": "ssh-ed25519 AAAAtest",
        "maxAttempts": 3,
        "minDeployed": 2,
    }
    checked = plugin.check_res(DEP, "d", spec)
    assert not checked.failures
    created = plugin.create(DEP, "d", checked.inputs, timeout=120)
    dep = codec.decode(created.properties)
    assert dep["failedNodes"] == [nodes[1]]
    assert sorted(dep["deployedNodes"]) == sorted([nodes[0], nodes[2]])
    assert dep["results"][nodes[0]]["attempts"] == 2 and dep["results"][nodes[1]]["attempts"] == 3
    assert len(dep["deploymentUids"]) == 3
    assert any("failed: " + nodes[1] in m for m in plugin.engine.messages())

    # fewer than minDeployed: a failure that keeps the state
    emulator.control("POST", "deploy-failures", {"nodes": nodes, "times": 5})
    with pytest.raises(grpc.RpcError) as err:
        plugin.create(DEP, "d2", plugin.check_res(DEP, "d2", {**spec, "maxAttempts": 1}).inputs)
    partial = init_failure(err.value)
    assert partial is not None and "fewer than minDeployed=2" in err.value.details()
    assert sorted(codec.decode(partial.properties)["failedNodes"]) == sorted(nodes)

    plugin.delete(DEP, "d", created.id, created.properties)
    plugin.delete(JOB, "j", job.id, job.properties)
    assert plugin.read(DEP, "d", created.id, created.properties, checked.inputs).id == ""  # the job ended: gone


def test_deployment_input_and_job_errors(plugin, emulator):
    plugin.configure_g5k(emulator)
    bad = {f.property for f in plugin.check_res(DEP, "d", {"site": "rennes", "jobUid": 0, "maxAttempts": 50, "colour": 1}).failures}
    assert bad == {"jobUid", "environment", "maxAttempts", "colour"}
    [unknown] = plugin.check_res(DEP, "d", {"site": "rennes", "jobUid": 1, "environment": "debian99-min"}).failures
    assert unknown.property == "environment" and "no environment `debian99-min` at rennes (similar: debian10-min" in unknown.reason
    job, out = running_job(plugin, "nodeploy", {"site": "rennes", "nodes": [{"count": 1}]})
    with pytest.raises(grpc.RpcError) as err:
        plugin.create(DEP, "d", {"site": "rennes", "jobUid": out["uid"], "environment": "debian12-min"})
    assert "type `deploy`" in err.value.details() and init_failure(err.value) is None
    plugin.delete(JOB, "nodeploy", job.id, job.properties)


def test_vlan_attachment_moves_secondary_interfaces_and_back(plugin, emulator):
    plugin.configure_g5k(emulator)
    job, out = running_job(plugin, "v", {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 2}], "vlan": {"type": "kavlan"}})
    vlan = out["vlans"][0]
    checked = plugin.check_res(VLAN, "a", {"site": "lyon", "jobUid": out["uid"], "interface": "eth1"})
    assert not checked.failures
    created = plugin.create(VLAN, "a", checked.inputs)
    members = codec.decode(created.properties)["members"]
    short = [n.split(".")[0] for n in out["assignedNodes"]]
    assert [m["hostname"] for m in members] == [f"{s}-eth1-kavlan-{vlan}.lyon.grid5000.fr" for s in short]
    assert all(m["ip"] for m in members)
    from g5k_emulator.testing import grid5000_client

    gk = grid5000_client(emulator)
    in_vlan = {n.uid for n in gk.sites["lyon"].vlans[vlan].nodes.list()}
    assert {m["interfaceAddress"] for m in members} <= in_vlan

    plugin.delete(VLAN, "a", created.id, created.properties)
    in_vlan = {n.uid for n in gk.sites["lyon"].vlans[vlan].nodes.list()}
    assert not {m["interfaceAddress"] for m in members} & in_vlan

    bad = {f.property for f in plugin.check_res(VLAN, "b", {"site": "lyon", "jobUid": out["uid"], "interface": "eno2", "vlan": 4}).failures}
    assert bad == {"interface", "vlan"}
    with pytest.raises(grpc.RpcError) as err:  # nova nodes have no eth1 in the reference
        plugin.create(VLAN, "c", {"site": "lyon", "jobUid": out["uid"], "interface": "eth7"})
    assert "has no interface `eth7`" in err.value.details()
    plugin.delete(JOB, "v", job.id, job.properties)
    assert job_state(emulator, "lyon", out["uid"]) == "error"


def test_partial_deployment_is_finished_by_the_next_update(plugin, emulator):
    from pulumi.runtime.proto import provider_pb2

    plugin.configure_g5k(emulator)
    job, out = running_job(plugin, "j", {"site": "nancy", "nodes": [{"cluster": "gros", "count": 2}], "types": ["deploy"]})
    nodes = out["assignedNodes"]
    emulator.control("POST", "deploy-failures", {"nodes": [nodes[1]], "times": 2})
    inputs = plugin.check_res(DEP, "d", {"site": "nancy", "jobUid": out["uid"], "environment": "debian11-min", "maxAttempts": 2}).inputs
    with pytest.raises(grpc.RpcError) as err:
        plugin.create(DEP, "d", inputs)
    partial = init_failure(err.value)
    assert codec.decode(partial.properties)["failedNodes"] == [nodes[1]]
    emulator.control("DELETE", "calls")
    updated = plugin.stub.Update(
        provider_pb2.UpdateRequest(
            id=partial.id, urn=plugin.urn(DEP, "d"), type=DEP, olds=partial.properties, old_inputs=inputs, news=inputs, timeout=60
        )
    )
    dep = codec.decode(updated.properties)
    assert dep["failedNodes"] == [] and sorted(dep["deployedNodes"]) == sorted(nodes)
    assert dep["results"][nodes[0]]["attempts"] == 1 and len(dep["deploymentUids"]) == 3
    assert emulator.control("GET", "calls")["calls"]["POST /sites/{site}/deployments"] == 1  # only the failed node again
    plugin.delete(JOB, "j", job.id, job.properties)


def test_primary_interface_and_subnets(plugin, emulator):
    plugin.configure_g5k(emulator)
    job, out = running_job(
        plugin,
        "p",
        {
            "site": "rennes",
            "nodes": [{"cluster": "roazhon", "count": 1}],
            "vlan": {"type": "kavlan-local"},
            "subnet": {"size": "slash_22", "count": 1},
        },
    )
    assert out["oarRequest"] == "{cluster='roazhon'}/nodes=1+{type='kavlan-local'}/vlan=1+slash_22=1,walltime=1:00:00"
    assert len(out["subnets"]) == 1 and out["subnets"][0].endswith("/22")
    created = plugin.create(VLAN, "a", plugin.check_res(VLAN, "a", {"site": "rennes", "jobUid": out["uid"], "interface": "primary"}).inputs)
    [member] = codec.decode(created.properties)["members"]
    vlan = out["vlans"][0]
    short = out["assignedNodes"][0].split(".")[0]
    assert member["interfaceAddress"] == out["assignedNodes"][0] and member["device"] == "eth0"
    assert member["hostname"] == f"{short}-kavlan-{vlan}.rennes.grid5000.fr"
    plugin.delete(VLAN, "a", created.id, created.properties)
    plugin.delete(JOB, "p", job.id, job.properties)
