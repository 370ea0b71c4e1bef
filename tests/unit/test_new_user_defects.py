"""Issue 10's defects in the resource layer, without a testbed: Check messages, patterns checked
against a Reservation's planned hosts at the first preview, host names never redacted."""

import asyncio

import pytest

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol import codec
from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.protocol.redact import REDACTOR
from testbed_provider.protocol.server import _decode, _failures, _invoke_failures
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.command import Command
from testbed_provider.resources.play import Play
from testbed_provider.resources.reservation import Reservation, spec_from_inputs
from testbed_provider.testbeds.base import CheckFailure

RES_URN = "urn:pulumi:dev::proj::testbed:index:Reservation::nodes"
MACHINES = [{"roles": ["server"], "count": 1}, {"roles": ["client", "edge"], "count": 2}]


def context(backend: str = "local") -> ProviderContext:
    return ProviderContext(config=ProviderConfig(backend=backend), log=EngineLog(None))


def failures(result) -> dict[str, str]:
    return {f.property: f.reason for f in result.failures}


# ---- Check messages (point 10) -----------------------------------------------------------------


def test_check_failures_carry_their_path_in_the_reason_for_the_engine():
    wire = _failures([CheckFailure("machines[0].count", "must be at least 1 (got 0)"), CheckFailure("", "whole thing")])
    assert [(f.property, f.reason) for f in wire] == [("", "machines[0].count: must be at least 1 (got 0)"), ("", "whole thing")]
    # invokes keep the property: the SDKs print `reason (property)`
    assert [(f.property, f.reason) for f in _invoke_failures([CheckFailure("on", "bad")])] == [("on", "bad")]


@pytest.mark.parametrize(
    "count,fragment",
    [
        ("two", "must be a whole number of machines (got the string `two`)"),
        (1.5, "must be a whole number of machines (got `1.5`)"),
        (None, "required: a whole number of machines"),
    ],
)
def test_a_count_that_is_no_number_says_so(count, fragment):
    group = {"roles": ["server"]} if count is None else {"roles": ["server"], "count": count}
    got = failures(asyncio.run(Reservation(context()).check("nodes", {}, {"machines": [group]})))
    assert fragment in got["machines[0].count"], got


def test_a_bad_defaulted_name_says_it_came_from_the_resource_name():
    got = failures(asyncio.run(Reservation(context()).check("my nodes!", {}, {"machines": MACHINES})))
    assert "defaults to the resource name `my nodes!`" in got["name"] and "pass `name`" in got["name"], got
    explicit = failures(asyncio.run(Reservation(context()).check("nodes", {}, {"machines": MACHINES, "name": "my nodes!"})))
    assert "resource name" not in explicit["name"]


# ---- a pattern at the first preview (point 4) -----------------------------------------------------


def preview_check(controller_type, ctx: ProviderContext, on: str, **extra):
    return failures(asyncio.run(controller_type(ctx).check("step", {}, {"inventory": UNKNOWN, "on": on, **extra})))


def test_an_unknown_role_fails_the_first_preview_when_the_reservation_is_known():
    ctx = context()
    assert not asyncio.run(Reservation(ctx).check("nodes", {}, {"machines": MACHINES}, urn=RES_URN)).failures
    got = preview_check(Command, ctx, "serverr", create="true")
    assert "unknown role or host `serverr`" in got["on"] and "roles: client, edge, server" in got["on"], got
    assert "inventory is not known before it is reserved" in got["on"]
    # a pattern that matches nothing is caught too, and good patterns (roles, planned names) pass
    assert "matches no host" in preview_check(Command, ctx, "server:&client", create="true")["on"]
    for good in ("server", "client:!server", "client-2", "edge[0]", "all", "cli*"):
        assert preview_check(Command, ctx, good, create="true") == {}, good
    # Play shares the rule
    assert "unknown role or host `serverr`" in preview_check(Play, ctx, "serverr", tasks=[{"ansible.builtin.ping": {}}])["on"]


def test_where_the_testbed_names_hosts_itself_only_roles_are_judged():
    ctx = context("g5k")
    reservation = Reservation(ctx)
    reservation._remember_plan(RES_URN, spec_from_inputs({"name": "nodes", "machines": MACHINES}), None)
    assert "unknown role or host" not in preview_check(Command, ctx, "taurus-3.lyon.grid5000.fr", create="true").get("on", "")
    assert preview_check(Command, ctx, "taurus*", create="true") == {}
    got = preview_check(Command, ctx, "server:&client", create="true")
    assert "matches no host" in got["on"] and "hosts: named when reserved" in got["on"], got


def test_without_a_known_reservation_the_preview_says_the_pattern_is_checked_at_up():
    ctx = context()
    assert preview_check(Command, ctx, "serverr", create="true") == {}
    lines: list[str] = []

    async def info(urn, text):
        lines.append(text)

    ctx.log.info = info  # type: ignore[method-assign]
    asyncio.run(
        Command(ctx).create(
            "urn:pulumi:dev::proj::testbed:index:Command::step", {"inventory": UNKNOWN, "on": "serverr", "create": "true"}, preview=True
        )
    )
    assert lines == [
        "the host pattern `serverr` will be checked against the reservation's hosts once its inventory is known (at `pulumi up`)"
    ]


# ---- names are not secrets (point 5) ---------------------------------------------------------------


def test_a_steps_secret_inventory_does_not_make_host_names_secret():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUtest-key-line\n-----END OPENSSH PRIVATE KEY-----\n"
    inventory = {
        "hosts": [{"name": "backend-1", "address": "198.19.0.7", "roles": ["backend"], "user": "root", "port": 22}],
        "groups": {"backend": ["backend-1"]},
        "ssh": {"user": "root", "port": 22, "knownHosts": "", "privateKey": key},
    }
    # what the SDK sends: the whole inventory secret, because its key is
    struct = codec.encode({"inventory": Secret(inventory), "on": "backend", "create": "true"})
    props = _decode(Command(context()), struct)
    assert isinstance(props["inventory"], Secret)
    assert REDACTOR.scrub("adding backend-2, backend-3 on 198.19.0.7") == "adding backend-2, backend-3 on 198.19.0.7"
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUtest-key-line" not in REDACTOR.scrub(f"oops {key}")
