"""A g5k Job read back for `pulumi import` from the API's job object (which never echoes the
`resources` string), and Diff comparing what inputs mean rather than how they are written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.protocol.errors import ResourceFailure
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.g5k_job import Job, _imported_inputs, validate
from testbed_provider.testbeds.g5k import jobs, tagging

URN = "urn:pulumi:dev::proj::testbed:g5k:Job::exp"


def api_job(**fields: Any) -> dict[str, Any]:
    """A job object as GET /sites/lyon/jobs/{uid} returns it (the emulator's shape)."""
    job = {
        "uid": 1001,
        "user": "alice",
        "project": "default",
        "queue": "default",
        "state": "running",
        "types": [],
        "command": "sleep infinity",
        "properties": "maintenance = 'NO'",
        "walltime": 3600,
        "scheduled_at": 1796168013,
        "started_at": 1796168013,
        "message": "R=1,W=1:00:00,J=B,Q=default (Karma=0.000,quota_ok)",
        "assigned_nodes": ["taurus-1.lyon.grid5000.fr"],
        "resources_by_type": {},
    }
    return job | fields


def submitted_by_us(inputs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The API's view of the job this provider submits for `inputs` (tagged command)."""
    spec, failures = validate(inputs)
    assert spec is not None, failures
    body = spec.body
    return api_job(
        command=tagging.tag(body["command"], URN, body),
        walltime=spec.walltime,
        name=body.get("name"),
        types=body.get("types", []),
        **fields,
    )


def job() -> Job:
    return Job(ProviderContext(config=ProviderConfig(backend="g5k"), log=EngineLog(None)))


def same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return job().diff({}, old, new).detailed == {}


def test_a_job_submitted_by_hand_reads_back_from_what_it_holds():
    held = api_job(
        name="mine",
        command="sleep 3600",
        types=["deploy"],
        walltime=7200,
        project="p1",
        assigned_nodes=[
            "taurus-10.lyon.grid5000.fr",
            "orion-1.lyon.grid5000.fr",
            "taurus-2.lyon.grid5000.fr",
        ],
        resources_by_type={
            "vlans": ["5", "6"],
            "subnets": ["10.158.0.0/22", "10.158.4.0/22"],
        },
    )
    inputs, warning = _imported_inputs("lyon", held)
    assert warning is None
    assert inputs == {
        "site": "lyon",
        "walltime": "2:00:00",
        "name": "mine",
        "project": "p1",
        "command": "sleep 3600",
        "types": ["deploy"],
        # one group per cluster, clusters sorted
        "nodes": [
            {"count": 1, "cluster": "orion"},
            {"count": 2, "cluster": "taurus"},
        ],
        "vlan": {"type": "kavlan", "count": 2},
        "subnet": {"size": "slash_22", "count": 2},
    }
    assert validate(inputs)[1] == []
    # what OAR records for defaults is left out, so the generated code stays short
    inputs, _ = _imported_inputs("lyon", api_job(queue="default", project="default", command="sleep infinity"))
    assert inputs == {
        "site": "lyon",
        "walltime": "1:00:00",
        "nodes": [{"count": 1, "cluster": "taurus"}],
    }


def test_what_typed_inputs_cannot_say_reads_back_as_raw_resources():
    held = api_job(
        resources_by_type={"vlans": ["2", "4"]},
        properties="(gpu_count > 0) AND maintenance = 'NO'",
    )
    inputs, _ = _imported_inputs("lyon", held)
    assert "nodes" not in inputs and "vlan" not in inputs
    assert inputs["rawResources"] == "{cluster='taurus' AND (gpu_count > 0)}/nodes=1+{type='kavlan'}/vlan=1+{type='kavlan-local'}/vlan=1"
    assert validate(inputs)[1] == []


def test_a_job_holding_no_node_yet_or_an_unknown_vlan_is_refused_clearly():
    with pytest.raises(ResourceFailure, match=r"job lyon:1001 holds no nodes yet \(`waiting`"):
        _imported_inputs("lyon", api_job(state="waiting", assigned_nodes=[]))
    with pytest.raises(ResourceFailure, match="holds resources a Job cannot declare"):
        _imported_inputs("lyon", api_job(resources_by_type={"vlans": ["99"]}))


@pytest.mark.parametrize(
    "declared",
    [
        # no cluster named (the job landed on two)
        {"site": "lyon", "nodes": [{"count": 3}]},
        # clusters not sorted
        {
            "site": "lyon",
            "nodes": [
                {"cluster": "taurus", "count": 2},
                {"cluster": "orion", "count": 1},
            ],
        },
        {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 2}, {"count": 1}]},
        {
            "site": "lyon",
            "nodes": [{"count": 3, "hosts": ["orion-1", "taurus-1", "taurus-2"]}],
            "walltime": "0:30",
        },
        {
            "site": "lyon",
            "nodes": [{"count": 3}],
            "subnet": {"size": "slash_18"},
            "project": "default",
        },
        {
            "site": "lyon",
            "nodes": [{"count": 3}],
            "types": ["besteffort"],
            "queue": "besteffort",
        },
        {
            "site": "lyon",
            "rawResources": "{cluster='orion'}/nodes=1+{cluster='taurus'}/nodes=2,walltime=2:00:00",
        },
    ],
)
def test_a_job_of_ours_reads_back_as_it_was_declared(declared):
    """The tag's request hash picks, among the requests that hold what the job holds, the one
    the program asked for: the program then matches its import."""
    declared = {**declared, "name": "exp-0a1b2c"}
    subnets = ["10.158.0.0/22", *[f"10.158.{4 * i}.0/22" for i in range(1, 16)]] if "subnet" in declared else []
    queue = "besteffort" if "besteffort" in declared.get("types", []) else "default"
    held = submitted_by_us(
        declared,
        queue=queue,
        resources_by_type={"subnets": subnets} if subnets else {},
        assigned_nodes=[
            "taurus-1.lyon.grid5000.fr",
            "orion-1.lyon.grid5000.fr",
            "taurus-2.lyon.grid5000.fr",
        ],
    )
    inputs, warning = _imported_inputs("lyon", held)
    assert warning is None
    imported_spec, declared_spec = validate(inputs)[0], validate(declared)[0]
    assert imported_spec and declared_spec
    assert imported_spec.resources == declared_spec.resources  # the very request
    assert same(inputs, declared)


def test_a_request_of_ours_that_cannot_be_told_is_imported_with_a_warning():
    declared = {
        "site": "lyon",
        "nodes": [{"count": 1, "properties": "gpu_count > 0"}],
        "name": "exp-0a1b2c",
    }
    inputs, warning = _imported_inputs("lyon", submitted_by_us(declared))
    assert warning is not None and "could not be told" in warning and "{cluster='taurus'}/nodes=1,walltime=1:00:00" in warning
    assert inputs["nodes"] == [{"count": 1, "cluster": "taurus"}]


def test_an_advance_reservation_reads_back_its_start():
    held = api_job(
        message="R=1,W=1:00:00,J=R,Q=default (Karma=0.000,quota_ok)",
        state="waiting",
        scheduled_at=1796166000,
    )
    inputs, _ = _imported_inputs("lyon", held)
    assert inputs["reservation"] == "2026-12-02 00:00:00"  # Paris time, as OAR takes it
    assert same(inputs, {**inputs, "reservation": "2026-12-01T23:00:00Z"})
    assert not same(inputs, {**inputs, "reservation": "2026-12-01T23:00:01Z"})


def test_diff_compares_what_the_inputs_mean():
    base = {
        "site": "lyon",
        "nodes": [{"cluster": "taurus", "count": 2}],
        "vlan": {"type": "kavlan"},
        "name": "exp",
    }
    assert same(
        base,
        {
            **base,
            "walltime": "1:00:00",
            "command": "sleep infinity",
            "queue": "default",
            "waitUntil": "running",
        },
    )
    assert same(base, {**base, "vlan": {"type": "kavlan", "count": 1}, "walltime": "1"})
    assert same(
        base,
        {
            "site": "lyon",
            "name": "exp",
            "rawResources": "{cluster='taurus'}/nodes=2+{type='kavlan'}/vlan=1",
        },
    )
    assert same(
        {**base, "nodes": [{"count": 1, "hosts": ["taurus-1"]}]},
        {**base, "nodes": [{"count": 1, "hosts": ["taurus-1.lyon.grid5000.fr"]}]},
    )
    # real changes: the request replaces, the walltime (even inside rawResources) is in place
    diff = job().diff({}, base, {**base, "nodes": [{"count": 2}]})
    assert diff.replaces == ["nodes"] and diff.delete_before_replace
    raw = {"site": "lyon", "name": "exp", "rawResources": "nodes=1,walltime=1:00:00"}
    diff = job().diff({}, raw, {**raw, "rawResources": "nodes=1,walltime=2:00:00"})
    assert diff.changed_keys == ["rawResources"] and diff.replaces == []
    diff = job().diff({}, base, {**base, "walltime": "2:00"})
    assert diff.changed_keys == ["walltime"] and diff.replaces == []


def test_check_keeps_an_imported_job_unnamed_and_names_a_new_one():
    imported = {
        "site": "lyon",
        "nodes": [{"count": 1, "cluster": "taurus"}],
        "walltime": "1:00:00",
    }
    checked = asyncio.run(job().check("exp", imported, dict(imported), urn=URN))
    assert "name" not in checked.inputs and checked.failures == []
    fresh = asyncio.run(job().check("exp", {}, dict(imported), urn=URN))
    assert fresh.inputs["name"] == f"exp-{tagging.owner_of(URN)}"
    assert jobs.requests_for(jobs.holding(api_job(assigned_nodes=[]))) == []
