"""Reservation Check and Diff rules, without any testbed."""

import asyncio

import pytest

from testbed_provider.config import ProviderConfig, parse_config
from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.diff import Kind
from testbed_provider.resources.reservation import Reservation, outputs_from_state, state_from_outputs, validate_inputs

GOOD = {
    "machines": [{"roles": ["server"], "count": 1}, {"roles": ["client"], "count": 2}],
    "networks": [{"id": "exp", "roles": ["server", "client"], "cidr": "198.18.5.0/24"}],
}


def props(failures):
    return {f.property: f.reason for f in failures}


def test_good_inputs_pass():
    assert validate_inputs(dict(GOOD, name="r")) == []


@pytest.mark.parametrize(
    "inputs,prop,fragment",
    [
        ({"machines": []}, "machines", "at least one"),
        ({"machines": [{"roles": ["a"], "count": 0}]}, "machines[0].count", "at least 1"),
        ({"machines": [{"roles": ["a"], "count": 1.5}]}, "machines[0].count", "whole number"),
        ({"machines": [{"roles": [], "count": 1}]}, "machines[0].roles", "at least one role"),
        ({"machines": [{"roles": ["a", "a"], "count": 1}]}, "machines[0].roles", "duplicate role `a`"),
        ({"machines": [{"roles": ["all"], "count": 1}]}, "machines[0].roles", "reserved"),
        ({"machines": [{"roles": ["bad-role"], "count": 1}]}, "machines[0].roles[0]", "must be a letter, then letters, digits or `_`"),
        ({"machines": [{"roles": ["a"], "count": 1, "flavour": "big"}]}, "machines[0].flavour", "needs `kind: vm`"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "roles": ["b"]}]}, "networks[0].roles", "unknown role `b`"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "roles": []}]}, "networks[0].roles", "at least one"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "cidr": "198.18.0.1/24"}]}, "networks[0].cidr", "malformed"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "cidr": "nonsense"}]}, "networks[0].cidr", "malformed"),
        (
            {
                "machines": [{"roles": ["a"], "count": 1}],
                "networks": [{"id": "n", "cidr": "198.18.0.0/16"}, {"id": "m", "cidr": "198.18.4.0/24"}],
            },
            "networks[1].cidr",
            "overlaps networks[0].cidr",
        ),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n"}, {"id": "n"}]}, "networks[1].id", "duplicate"),
        ({"machines": [{"roles": ["a"], "count": 1}], "nodes": 3}, "nodes", "unknown property"),
    ],
)
def test_bad_inputs_name_the_property(inputs, prop, fragment):
    failures = props(validate_inputs(dict(inputs, name="r")))
    assert prop in failures, failures
    assert fragment in failures[prop]


def test_unknowns_in_preview_are_not_failures():
    assert validate_inputs({"name": "r", "machines": UNKNOWN, "networks": [{"id": "n", "roles": ["x"]}]}) == []
    assert validate_inputs({"name": "r", "machines": [{"roles": UNKNOWN, "count": UNKNOWN}]}) == []


def test_unknown_backend_is_a_config_failure():
    config, failures = parse_config({"backend": "nope", "version": "0.1.0"})
    assert props(failures)["backend"].startswith("unknown backend `nope`")
    _, failures = parse_config({"backend": "g5k", "g5kConfigFile": "/nonexistent/g5k.yaml"})
    assert "backend" not in props(failures) and "does not exist" in props(failures)["g5kConfigFile"]
    config, failures = parse_config({"backend": Secret("local")})
    assert failures == [] and config.backend == "local"


def controller():
    return Reservation(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))


def test_check_defaults_name_and_keeps_old_one():
    assert asyncio.run(controller().check("nodes", {}, dict(GOOD))).inputs["name"] == "nodes"
    assert asyncio.run(controller().check("nodes", {"name": "first"}, dict(GOOD))).inputs["name"] == "first"


def test_diff_count_change_is_an_in_place_update():
    old = dict(GOOD, name="r")
    new = {**old, "machines": [{"roles": ["server"], "count": 1}, {"roles": ["client"], "count": 3}]}
    result = controller().diff({}, old, new)
    assert result.detailed == {"machines[1].count": Kind.UPDATE}
    assert result.replaces == []


def test_diff_network_or_name_change_replaces_deleting_first():
    old = dict(GOOD, name="r")
    result = controller().diff({}, old, {**old, "networks": [{"id": "exp", "cidr": "198.18.6.0/24"}]})
    assert "networks" in result.replaces and result.delete_before_replace
    assert result.detailed["networks[0].cidr"] == Kind.UPDATE_REPLACE
    assert controller().diff({}, old, {**old, "name": "s"}).replaces == ["name"]


def test_diff_unknown_replace_field_in_preview_is_a_replace():
    old = dict(GOOD, name="r")
    result = controller().diff({}, old, {**old, "networks": UNKNOWN})
    assert result.replaces == ["networks"]


def test_diff_no_change_and_drift_repair():
    old = dict(GOOD, name="r")
    assert controller().diff({"hosts": [{}, {}, {}]}, old, dict(old)).detailed == {}
    # refresh found only 2 of 3 hosts alive: `pulumi up` must update to recreate the lost one
    assert controller().diff({"hosts": [{}, {}]}, old, dict(old)).detailed == {"machines": Kind.UPDATE}


def test_preview_create_marks_computed_outputs_unknown():
    rid, outputs = asyncio.run(controller().create("urn", dict(GOOD, name="r"), preview=True))
    assert rid == ""
    for key in ("hosts", "roles", "inventory", "sshPrivateKey"):
        assert outputs[key] is UNKNOWN
    assert outputs["machines"] == GOOD["machines"]


def test_outputs_keep_the_key_secret_and_state_round_trips():
    state = {
        "backend": "local",
        "id": "tb-r-abc123",
        "hosts": [{"name": "server-1", "address": "198.19.0.1", "roles": ["server"], "networks": []}],
        "networks": [],
        "ssh": {
            "user": "root",
            "port": 22,
            "privateKey": "KEY-TEXT-123",
            "publicKey": "ssh-ed25519 AAA",
            "knownHosts": "x",
            "proxyCommand": "p",
        },
        "local": {"prefix": "tb-r-abc123-"},
    }
    outputs = outputs_from_state(state, dict(GOOD, name="r"))
    assert outputs["sshPrivateKey"] == Secret("KEY-TEXT-123")
    assert outputs["inventory"]["ssh"]["privateKey"] == Secret("KEY-TEXT-123")
    assert "KEY-TEXT-123" not in repr(outputs["testbedState"]) and "privateKey" not in outputs["ssh"]
    assert outputs["roles"] == {"server": ["server-1"]}
    assert state_from_outputs(outputs) == state
