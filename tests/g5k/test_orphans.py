"""A provider killed (SIGKILL) while Create waits for its job leaves no state in the engine: the
next Create of the same resource must adopt the job it left (found by its URN-derived OAR job
name), never submit a second one. The real plugin process over gRPC, against the emulator."""

from __future__ import annotations

import os
import signal
import threading

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2

from testbed_provider.protocol import codec
from testbed_provider.testbeds.g5k import naming

from ..plugin.engine import init_failure
from .conftest import FAST_POLL, G5kPlugin, job_state

JOB = "testbed:g5k:Job"
RES = "testbed:index:Reservation"
RES_SPEC = {"machines": [{"roles": ["server"], "count": 1, "cluster": "taurus"}, {"roles": ["client"], "count": 1, "cluster": "taurus"}]}


def alive(emu, site: str, name: str = "") -> list[dict]:
    from g5k_emulator.testing import grid5000_client

    jobs = [j.to_dict() for j in grid5000_client(emu).sites[site].jobs.list(state="waiting,launching,running")]
    return [j for j in jobs if not name or j.get("name") == name]


def posts(emu) -> int:
    return emu.control("GET", "calls")["calls"].get("POST /sites/{site}/jobs", 0)


def kill_during_create(plugin: G5kPlugin, token: str, name: str, inputs, until) -> None:
    """Create in a thread, SIGKILL the plugin's process group once `until()` holds."""
    outcome: dict = {}

    def create():
        try:
            plugin.create(token, name, inputs, timeout=0)
        except grpc.RpcError as err:
            outcome["err"] = err

    thread = threading.Thread(target=create)
    thread.start()
    try:
        until()
    finally:
        os.killpg(plugin.proc.pid, signal.SIGKILL)
        plugin.proc.wait(10)
        thread.join(20)
    assert not thread.is_alive() and "err" in outcome  # no answer, hence no state in the engine


def test_job_names_are_unique_per_urn_and_stable(plugin, emulator):
    plugin.configure_g5k(emulator)
    spec = {"site": "nancy", "nodes": [{"count": 1}]}

    def checked(urn: str, news: dict, olds: dict | None = None) -> str:
        name = urn.rsplit("::", 1)[-1]
        request = provider_pb2.CheckRequest(urn=urn, type=JOB, name=name, olds=codec.encode(olds or {}), news=codec.encode(news))
        return codec.decode(plugin.stub.Check(request).inputs)["name"]

    a = "urn:pulumi:dev::proj::testbed:g5k:Job::exp"
    b = "urn:pulumi:prod::proj::testbed:g5k:Job::exp"  # same resource name, another stack
    c = "urn:pulumi:dev::other::testbed:g5k:Job::exp"  # another project
    names = [checked(u, spec) for u in (a, b, c)]
    assert len(set(names)) == 3 and all(n.startswith("exp-") and len(n) == len("exp-") + 6 for n in names)
    assert checked(a, spec) == names[0] == naming.job_name("exp", a)  # deterministic: a second preview shows no diff
    assert checked(a, {**spec, "name": "mine"}) == "mine"  # a user's name is kept as is
    assert checked(a, spec, olds={**spec, "name": "exp"}) == "exp"  # an older stack's recorded name: no replacement
    assert naming.owns(names[0], a) and not naming.owns(names[0], b) and not naming.owns("mine", a)


def test_killed_provider_job_is_adopted_not_resubmitted(emulator):
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator)
        blocker = first.create(JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs)
        spec = {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 2}]}
        inputs = first.check_res(JOB, "queued", spec).inputs
        name = codec.decode(inputs)["name"]
        assert name == naming.job_name("queued", first.urn(JOB, "queued"))
        kill_during_create(first, JOB, "queued", inputs,
                           lambda: emulator.wait_for(lambda: len(alive(emulator, "rennes", name)) == 1, timeout=20))
        [orphan] = alive(emulator, "rennes", name)
        assert orphan["state"] == "waiting" and posts(emulator) == 2

        second.configure_g5k(emulator)
        assert second.check_res(JOB, "queued", spec).inputs == inputs  # same URN, same name
        second.delete(JOB, "all", blocker.id, blocker.properties)
        created = second.create(JOB, "queued", inputs)
        out = codec.decode(created.properties)
        assert out["uid"] == orphan["uid"] and out["state"] == "running" and created.id == f"rennes:{orphan['uid']}"
        assert any(f"adopting job rennes:{orphan['uid']} left by an interrupted run" in m for m in second.engine.messages())
        assert posts(emulator) == 2  # never submitted a second time
        assert [j["uid"] for j in alive(emulator, "rennes", name)] == [orphan["uid"]]
        second.delete(JOB, "queued", created.id, created.properties)
        assert alive(emulator, "rennes", name) == []
        assert job_state(emulator, "rennes", orphan["uid"]) in ("error", "terminated")
    finally:
        first.stop()
        second.stop()


def test_orphan_that_no_longer_matches_is_deleted_and_a_new_job_submitted(emulator):
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator)
        blocker = first.create(JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs)
        spec = {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 2}], "walltime": "1:00"}
        inputs = first.check_res(JOB, "q", spec).inputs
        name = codec.decode(inputs)["name"]
        kill_during_create(first, JOB, "q", inputs, lambda: emulator.wait_for(lambda: alive(emulator, "rennes", name), timeout=20))
        [orphan] = alive(emulator, "rennes", name)

        second.configure_g5k(emulator)
        second.delete(JOB, "all", blocker.id, blocker.properties)
        changed = second.check_res(JOB, "q", {**spec, "walltime": "2:00"}).inputs  # the program changed meanwhile
        created = second.create(JOB, "q", changed)
        out = codec.decode(created.properties)
        assert out["uid"] != orphan["uid"] and out["walltimeSeconds"] == 7200
        assert any("no longer matches the request (walltime 1:00:00, not 2:00:00)" in m for m in second.engine.messages())
        assert job_state(emulator, "rennes", orphan["uid"]) in ("error", "terminated")
        assert [j["uid"] for j in alive(emulator, "rennes", name)] == [out["uid"]]
        second.delete(JOB, "q", created.id, created.properties)
    finally:
        first.stop()
        second.stop()


def test_a_user_named_job_is_never_adopted(plugin, emulator):
    """A name the user chose may be another stack's: an alive job of that name is left alone."""
    plugin.configure_g5k(emulator)
    spec = {"site": "nancy", "nodes": [{"count": 1}], "name": "shared"}
    other = plugin.create(JOB, "other", plugin.check_res(JOB, "other", spec).inputs)
    mine = plugin.create(JOB, "mine", plugin.check_res(JOB, "mine", spec).inputs)
    assert mine.id != other.id and len(alive(emulator, "nancy", "shared")) == 2
    plugin.delete(JOB, "mine", mine.id, mine.properties)
    plugin.delete(JOB, "other", other.id, other.properties)


def test_killed_provider_reservation_job_is_adopted(emulator):
    env = {**FAST_POLL, "PULUMI_TESTBED_G5K_READY_TIMEOUT": "2"}
    first = G5kPlugin(env=env)
    second = G5kPlugin(env=env)
    try:
        first.configure_g5k(emulator, g5kSite="lyon", g5kSshProxyCommand="false")
        blocker = first.create(JOB, "all", first.check_res(JOB, "all", {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 14}]}).inputs)
        inputs = first.check_res(RES, "r", RES_SPEC).inputs
        assert codec.decode(inputs)["name"] == "r"  # the Reservation's own name is unchanged
        name = naming.job_name("r", first.urn(RES, "r"))
        kill_during_create(first, RES, "r", inputs, lambda: emulator.wait_for(lambda: alive(emulator, "lyon", name), timeout=20))
        [orphan] = alive(emulator, "lyon", name)
        assert orphan["state"] == "waiting" and posts(emulator) == 2

        second.configure_g5k(emulator, g5kSite="lyon", g5kSshProxyCommand="false")
        second.delete(JOB, "all", blocker.id, blocker.properties)
        with pytest.raises(grpc.RpcError) as err:  # no SSH without emulated hosts: partial state, jobs recorded
            second.create(RES, "r", inputs, timeout=120)
        partial = init_failure(err.value)
        assert partial is not None
        state = codec.decode(partial.properties)["testbedState"]
        assert [j["uid"] for j in state["g5k"]["jobs"]] == [orphan["uid"]] and state["g5k"]["jobName"] == name
        assert any(f"adopting job lyon:{orphan['uid']} left by an interrupted run" in m for m in second.engine.messages())
        assert posts(emulator) == 2
        assert [j["uid"] for j in alive(emulator, "lyon", name)] == [orphan["uid"]]
        second.delete(RES, "r", partial.id, partial.properties)
        assert alive(emulator, "lyon", name) == []
    finally:
        first.stop()
        second.stop()


def test_killed_provider_multisite_reservation_adopts_each_site(emulator):
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator, g5kSshProxyCommand="false")
        blockers = [first.create(JOB, f"all-{site}", first.check_res(JOB, f"all-{site}", {
            "site": site, "nodes": [{"cluster": cluster, "count": count}], "walltime": "1:00"}).inputs)
            for site, cluster, count in (("lyon", "taurus", 14), ("nancy", "grisou", 48))]
        spec = {"machines": [{"roles": ["a"], "count": 1, "site": "lyon", "cluster": "taurus"},
                             {"roles": ["b"], "count": 1, "site": "nancy", "cluster": "grisou"}]}
        inputs = first.check_res(RES, "multi", spec).inputs
        name = naming.job_name("multi", first.urn(RES, "multi"))
        kill_during_create(first, RES, "multi", inputs, lambda: emulator.wait_for(
            lambda: alive(emulator, "lyon", name) and alive(emulator, "nancy", name), timeout=30))
        orphans = {site: [j["uid"] for j in alive(emulator, site, name)] for site in ("lyon", "nancy")}
        assert all(len(uids) == 1 for uids in orphans.values())
        submitted = posts(emulator)

        second.configure_g5k(emulator, g5kSshProxyCommand="false")
        with pytest.raises(grpc.RpcError) as err:  # still queued behind the blockers: stopped by the timeout, jobs recorded
            second.create(RES, "multi", inputs, timeout=3)
        partial = init_failure(err.value)
        assert partial is not None
        state = codec.decode(partial.properties)["testbedState"]
        assert {j["site"]: [j["uid"]] for j in state["g5k"]["jobs"]} == orphans
        messages = second.engine.messages()
        assert all(any(f"adopting job {site}:{uids[0]} left by an interrupted run" in m for m in messages) for site, uids in orphans.items())
        assert posts(emulator) == submitted  # nothing submitted again
        second.delete(RES, "multi", partial.id, partial.properties)
        assert alive(emulator, "lyon", name) == [] and alive(emulator, "nancy", name) == []
        for blocker, site in zip(blockers, ("lyon", "nancy")):
            second.delete(JOB, f"all-{site}", blocker.id, blocker.properties)
    finally:
        first.stop()
        second.stop()
