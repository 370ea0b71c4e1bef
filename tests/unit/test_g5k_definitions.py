"""The `testbed:g5k:*` definitions: what the generic Check says of bad inputs, what stays by hand,
and the declared defaults: the code reads them from the definition, and a default given or
omitted (an older stack's recorded inputs) is no change."""

from __future__ import annotations

import asyncio
from typing import Any

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.codec import UNKNOWN
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.g5k_deployment import Deployment
from testbed_provider.resources.g5k_deployment import validate as validate_deployment
from testbed_provider.resources.g5k_job import Job, validate
from testbed_provider.resources.g5k_job_schema import JOB, JobArgs, Queue
from testbed_provider.resources.g5k_vlan import VlanAttachment
from testbed_provider.typed.model import default_of
from testbed_provider.typed.schema import resource_spec


def ctx() -> ProviderContext:
    return ProviderContext(config=ProviderConfig(backend="g5k"), log=EngineLog(None))


def job_failures(inputs: dict[str, Any]) -> dict[str, str]:
    return {f.property: f.reason for f in validate(inputs)[1]}


def test_job_failures_say_what_is_expected():
    assert job_failures(
        {
            "site": "Lyon!",
            "nodes": [{"count": 0, "colour": "red"}, 3],
            "walltime": "forever",
            "queue": "fast",
            "vlan": "kavlan",
            "subnet": {"size": "slash_8"},
            "waitUntil": "never",
            "types": ["deploy", ""],
        }
    ) == {
        "site": "must be a Grid'5000 site name such as `rennes` (got the string `Lyon!`)",
        "nodes[0].count": "must be at least 1 (got 0)",
        "nodes[0].colour": "unknown property `colour` (a node group accepts cluster, count, hosts, properties)",
        "nodes[1]": "must be a node group (got `3`)",
        "walltime": "must be a duration `H:MM:SS`, `H:MM` or `H` (e.g. `1:30:00`) (got the string `forever`)",
        "queue": "must be one of `default`, `production`, `besteffort`, `testing`, `admin` (got the string `fast`)",
        "vlan": "must be a vlan request such as `{type: kavlan}` (got the string `kavlan`)",
        "subnet.size": "must be one of `slash_22`, `slash_18`, `slash_16`, `slash_14` (got the string `slash_8`)",
        "waitUntil": "must be one of `running`, `scheduled` (got the string `never`)",
        "types[1]": "must be an OAR job type such as `deploy` (got the string ``)",
    }
    assert job_failures({}) == {
        "site": "required: a Grid'5000 site name such as `rennes`",
        "nodes": "required: at least one node group `{count, cluster?, properties?, hosts?}` (or give `rawResources`)",
    }
    assert job_failures({"site": "lyon", "nodes": []}) == {"nodes": "must list at least one node group"}
    # by hand: the values OAR bounds, and what no single field says
    assert job_failures({"site": "lyon", "nodes": [{"count": 1}], "walltime": "200"}) == {
        "walltime": "walltime `200` exceeds OAR's limit of 168 hours"
    }
    assert job_failures({"site": "lyon", "nodes": [{"hosts": ["taurus-1", "taurus-2"], "count": 3}, {}]}) == {
        "nodes[0].count": "3 nodes requested but 2 named in hosts",
        "nodes[1].count": "required: how many nodes (or name them in `hosts`)",
    }
    assert job_failures({"site": "lyon", "nodes": [{"count": 1}], "reservation": "soon"}) == {
        "reservation": "malformed date `soon`: use `YYYY-MM-DD hh:mm:ss` (Paris time) or ISO 8601 with an offset"
    }


def test_named_hosts_give_the_count():
    spec, failures = validate({"site": "lyon", "nodes": [{"hosts": ["taurus-1", "taurus-2.lyon.grid5000.fr"]}]})
    assert failures == [] and spec is not None
    assert spec.resources == "{network_address in ('taurus-1.lyon.grid5000.fr', 'taurus-2.lyon.grid5000.fr')}/nodes=2,walltime=1:00:00"


def test_unknowns_inside_the_typed_request_wait_for_their_value():
    for inputs in (
        {"site": "lyon", "nodes": [{"count": 1}], "vlan": {"type": UNKNOWN}},
        {"site": "lyon", "nodes": [{"count": 1, "hosts": [UNKNOWN]}]},
        {"site": "lyon", "nodes": [{"count": UNKNOWN, "hosts": ["taurus-1"]}], "walltime": UNKNOWN},
    ):
        assert validate(inputs) == (None, [])


# A program that spells every default out, and the inputs an older stack recorded without them.
SPELLED_JOB = {
    "site": "lyon",
    "name": "exp",
    "nodes": [{"count": 1}],
    "vlan": {"type": "kavlan-local", "count": 1},
    "subnet": {"size": "slash_22", "count": 1},
    "walltime": "1:00:00",
    "command": "sleep infinity",
    "queue": "default",
    "waitUntil": "running",
}
RECORDED_JOB = {"site": "lyon", "name": "exp", "nodes": [{"count": 1}], "vlan": {"type": "kavlan-local"}, "subnet": {}}


def test_the_job_defaults_are_declared_once():
    spec = resource_spec(JOB)
    inputs = spec["inputProperties"]
    # provider-side defaults (Check does not record them): described, not sent by the SDKs
    assert [inputs[k]["description"].rsplit(" Default: ", 1)[1] for k in ("walltime", "command", "queue", "waitUntil")] == [
        "`1:00:00`.",
        "`sleep infinity`.",
        "`default`.",
        "`running`.",
    ]
    assert not any("default" in inputs[k] for k in inputs)
    assert inputs["queue"]["$ref"] == "#/types/testbed:g5k:Queue" and default_of(JobArgs, "queue") is Queue.DEFAULT
    assert spec["requiredInputs"] == ["site"] and "walltime" not in spec["required"]  # absent from older states


def test_defaults_given_or_omitted_are_the_same():
    a, b = validate(SPELLED_JOB)[0], validate(RECORDED_JOB)[0]
    assert a is not None and b is not None and (a.resources, a.body) == (b.resources, b.body)
    assert Job(ctx()).diff({}, RECORDED_JOB, SPELLED_JOB).detailed == {}
    # unknown at preview: compared as written, with the defaults filled on both sides
    assert Job(ctx()).diff({}, RECORDED_JOB, {**SPELLED_JOB, "walltime": UNKNOWN}).detailed == {"walltime": 4}
    raw = {"site": "lyon", "name": "exp", "rawResources": "nodes=1,walltime=2:00"}
    spelled = {**raw, "command": "sleep infinity", "queue": "default", "waitUntil": "running"}
    spec, failures = validate(spelled)
    assert failures == [] and spec is not None and spec.walltime == 7200
    assert Job(ctx()).diff({}, raw, spelled).detailed == {}
    # a walltime besides the one in the request is one too many, even the default
    for walltime in ("1:00:00", "3:00", UNKNOWN):
        assert job_failures({**raw, "walltime": walltime}) == {
            "walltime": "the walltime is already given in `rawResources` (`,walltime=…`); give it once"
        }

    deployment = {"site": "rennes", "jobUid": 7, "environment": "debian12-min"}
    assert Deployment(ctx()).diff({}, deployment, {**deployment, "maxAttempts": 3}).detailed == {}
    assert Deployment(ctx()).diff({}, deployment, {**deployment, "maxAttempts": 4}).detailed == {"maxAttempts": 4}
    attachment = {"site": "lyon", "jobUid": 7}
    assert VlanAttachment(ctx()).diff({}, attachment, {**attachment, "interface": "eth1"}).detailed == {}
    assert VlanAttachment(ctx()).diff({}, attachment, {**attachment, "interface": "primary"}).replaces == ["interface"]


def test_deployment_and_vlan_failures():
    assert {
        f.property: f.reason
        for f in validate_deployment(
            {"site": "rennes", "jobUid": "x", "environment": "", "nodes": [], "vlan": 4, "maxAttempts": 11, "minDeployed": -1}
        )
    } == {
        "jobUid": "must be an OAR job id (a Job's `uid`) (got the string `x`)",
        "environment": "must be an environment name such as `debian12-min` (see GET /sites/{site}/environments) (got the string ``)",
        "nodes": "must list at least one node name of the job (omit `nodes` to deploy every node of the job)",
        "vlan": 'must be a KaVLAN id as a string, e.g. `"4"` (got `4`)',
        "maxAttempts": "must be at most 10 (got 11)",
        "minDeployed": "must be at least 0 (got -1)",
    }
    assert {
        f.property: f.reason
        for f in validate_deployment({"site": "rennes", "jobUid": 1, "environment": "debian12-min", "nodes": ["a-1"], "minDeployed": 2})
    } == {"minDeployed": "2 exceeds the 1 node(s) listed in `nodes`"}
    checked = asyncio.run(
        VlanAttachment(ctx()).check("a", {}, {"site": "lyon", "jobUid": 3, "interface": "eno2", "vlan": "x", "nodes": []})
    )
    assert {f.property: f.reason for f in checked.failures} == {
        "interface": "must be `primary` or a legacy device name such as `eth1`; KaVLAN refuses predictable names like `eno2` "
        "(got the string `eno2`)",
        "vlan": 'must be a KaVLAN id as a string, e.g. `"4"` (omit it to use the job\'s first vlan) (got the string `x`)',
        "nodes": "must list at least one node name of the job (omit `nodes` for every node)",
    }
    checked = asyncio.run(VlanAttachment(ctx()).check("a", {}, {"site": "lyon", "jobUid": 3}))
    assert checked.failures == [] and checked.inputs == {"site": "lyon", "jobUid": 3}  # no default written into the inputs
