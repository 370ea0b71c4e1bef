"""A provider killed (SIGKILL) while Create waits for its job leaves no state in the engine: the
next Create of the same resource must adopt the job it left (found by its OAR job name and the
owner tag in its command, whatever the name), never submit a second one, and must delete it
instead when the request changed. The real plugin process over gRPC, against the emulator."""

from __future__ import annotations

import os
import signal
import threading

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2

from testbed_provider.protocol import codec
from testbed_provider.testbeds.g5k import naming, tagging

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
    assert names[0] == f"exp-{tagging.owner_of(a)}"  # the suffix is the owner in the command's tag


def test_killed_provider_job_is_adopted_not_resubmitted(emulator):
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator)
        blocker = first.create(
            JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs
        )
        spec = {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 2}]}
        inputs = first.check_res(JOB, "queued", spec).inputs
        name = codec.decode(inputs)["name"]
        assert name == naming.job_name("queued", first.urn(JOB, "queued"))
        kill_during_create(
            first, JOB, "queued", inputs, lambda: emulator.wait_for(lambda: len(alive(emulator, "rennes", name)) == 1, timeout=20)
        )
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
        blocker = first.create(
            JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs
        )
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


def test_killed_provider_user_named_job_is_adopted(emulator):
    """A user-set name proves nothing, the owner tag does: the orphan is adopted all the same."""
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator)
        blocker = first.create(
            JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs
        )
        spec = {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 2}], "name": "fixed", "command": "sleep 3600"}
        inputs = first.check_res(JOB, "named", spec).inputs
        kill_during_create(first, JOB, "named", inputs, lambda: emulator.wait_for(lambda: alive(emulator, "rennes", "fixed"), timeout=20))
        [orphan] = alive(emulator, "rennes", "fixed")
        mark = tagging.parse_tag(orphan["command"])
        assert mark is not None and mark.owner == tagging.owner_of(first.urn(JOB, "named"))
        assert tagging.strip_tag(orphan["command"]) == "sleep 3600" and posts(emulator) == 2

        second.configure_g5k(emulator)
        second.delete(JOB, "all", blocker.id, blocker.properties)
        created = second.create(JOB, "named", second.check_res(JOB, "named", spec).inputs)
        out = codec.decode(created.properties)
        assert created.id == f"rennes:{orphan['uid']}" and out["state"] == "running"
        assert out["command"] == "sleep 3600" and out["name"] == "fixed"  # the user's command, no tag
        assert any(f"adopting job rennes:{orphan['uid']} left by an interrupted run" in m for m in second.engine.messages())
        assert posts(emulator) == 2
        imported = codec.decode(second.read(JOB, "named", created.id).inputs)  # `pulumi import`: no tag either
        assert imported["command"] == "sleep 3600" and imported["name"] == "fixed"
        second.delete(JOB, "named", created.id, created.properties)
        assert alive(emulator, "rennes", "fixed") == []
    finally:
        first.stop()
        second.stop()


def test_orphan_holding_another_node_count_is_deleted_and_a_new_job_submitted(emulator):
    """Same walltime, queue, types and command: only the tag's request hash tells the orphan holds 2 nodes, not 3."""
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator)
        blocker = first.create(
            JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs
        )
        spec = {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 2}]}
        inputs = first.check_res(JOB, "grow", spec).inputs
        name = codec.decode(inputs)["name"]
        kill_during_create(first, JOB, "grow", inputs, lambda: emulator.wait_for(lambda: alive(emulator, "rennes", name), timeout=20))
        [orphan] = alive(emulator, "rennes", name)

        second.configure_g5k(emulator)
        second.delete(JOB, "all", blocker.id, blocker.properties)
        changed = second.check_res(JOB, "grow", {**spec, "nodes": [{"cluster": "parasilo", "count": 3}]}).inputs
        created = second.create(JOB, "grow", changed)
        out = codec.decode(created.properties)
        assert out["uid"] != orphan["uid"] and len(out["assignedNodes"]) == 3
        assert any(
            f"job rennes:{orphan['uid']} left by an interrupted run no longer matches the request (the request changed" in m
            for m in second.engine.messages()
        )
        assert job_state(emulator, "rennes", orphan["uid"]) in ("error", "terminated")
        assert [j["uid"] for j in alive(emulator, "rennes", name)] == [out["uid"]]
        assert posts(emulator) == 3  # the blocker, the orphan, the new job
        second.delete(JOB, "grow", created.id, created.properties)
    finally:
        first.stop()
        second.stop()


def test_orphan_of_a_renamed_job_is_found_by_its_tag_and_deleted(emulator):
    """The user renamed the Job between the killed create and the next up: the orphan is found by
    its owner tag among the user's alive jobs (not by name), and deleted since its name differs."""
    first = G5kPlugin(env=FAST_POLL)
    second = G5kPlugin(env=FAST_POLL)
    try:
        first.configure_g5k(emulator)
        blocker = first.create(
            JOB, "all", first.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs
        )
        spec = {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 1}], "name": "before"}
        kill_during_create(
            first,
            JOB,
            "exp",
            first.check_res(JOB, "exp", spec).inputs,
            lambda: emulator.wait_for(lambda: alive(emulator, "rennes", "before"), timeout=20),
        )
        [orphan] = alive(emulator, "rennes", "before")

        second.configure_g5k(emulator)
        second.delete(JOB, "all", blocker.id, blocker.properties)
        created = second.create(JOB, "exp", second.check_res(JOB, "exp", {**spec, "name": "after"}).inputs)
        assert any(
            f"job rennes:{orphan['uid']} left by an interrupted run no longer matches the request (name `before`, not `after`)" in m
            for m in second.engine.messages()
        )
        assert job_state(emulator, "rennes", orphan["uid"]) in ("error", "terminated")  # not leaked
        assert [j["uid"] for j in alive(emulator, "rennes", "after")] == [codec.decode(created.properties)["uid"]]
        second.delete(JOB, "exp", created.id, created.properties)
    finally:
        first.stop()
        second.stop()


def test_another_stacks_job_of_the_same_name_is_neither_adopted_nor_deleted(plugin, emulator):
    """A name the user chose may be shared: jobs of that name with another owner's tag (another
    stack, same resource name) or with no tag at all (made by hand) are left alone."""
    from g5k_emulator.testing import grid5000_client

    plugin.configure_g5k(emulator)
    spec = {"site": "nancy", "nodes": [{"count": 1}], "name": "shared"}
    inputs = plugin.check_res(JOB, "mine", spec).inputs
    prod = plugin.urn(JOB, "mine").replace(":test::", ":prod::")
    other = plugin.stub.Create(provider_pb2.CreateRequest(urn=prod, type=JOB, properties=inputs, timeout=120))
    by_hand = grid5000_client(emulator).sites["nancy"].jobs.create({"resources": "nodes=1", "command": "sleep infinity", "name": "shared"})
    mine = plugin.create(JOB, "mine", inputs)
    assert mine.id not in (other.id, f"nancy:{by_hand.uid}")
    assert {j["uid"] for j in alive(emulator, "nancy", "shared")} == {
        int(other.id.split(":")[1]),
        by_hand.uid,
        codec.decode(mine.properties)["uid"],
    }
    assert not any("interrupted run" in m for m in plugin.engine.messages())
    plugin.delete(JOB, "mine", mine.id, mine.properties)
    assert len(alive(emulator, "nancy", "shared")) == 2  # theirs still run
    plugin.stub.Delete(provider_pb2.DeleteRequest(id=other.id, urn=prod, type=JOB, properties=other.properties, timeout=120))
    grid5000_client(emulator).sites["nancy"].jobs[by_hand.uid].delete()


def test_killed_provider_reservation_job_is_adopted(emulator):
    env = {**FAST_POLL, "PULUMI_TESTBED_G5K_READY_TIMEOUT": "2"}
    first = G5kPlugin(env=env)
    second = G5kPlugin(env=env)
    try:
        first.configure_g5k(emulator, g5kSite="lyon", g5kSshProxyCommand="false")
        blocker = first.create(
            JOB, "all", first.check_res(JOB, "all", {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 14}]}).inputs
        )
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
        blockers = [
            first.create(
                JOB,
                f"all-{site}",
                first.check_res(
                    JOB, f"all-{site}", {"site": site, "nodes": [{"cluster": cluster, "count": count}], "walltime": "1:00"}
                ).inputs,
            )
            for site, cluster, count in (("lyon", "taurus", 14), ("nancy", "grisou", 48))
        ]
        spec = {
            "machines": [
                {"roles": ["a"], "count": 1, "site": "lyon", "cluster": "taurus"},
                {"roles": ["b"], "count": 1, "site": "nancy", "cluster": "grisou"},
            ]
        }
        inputs = first.check_res(RES, "multi", spec).inputs
        name = naming.job_name("multi", first.urn(RES, "multi"))
        kill_during_create(
            first,
            RES,
            "multi",
            inputs,
            lambda: emulator.wait_for(lambda: alive(emulator, "lyon", name) and alive(emulator, "nancy", name), timeout=30),
        )
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
        assert all(
            any(f"adopting job {site}:{uids[0]} left by an interrupted run" in m for m in messages) for site, uids in orphans.items()
        )
        assert posts(emulator) == submitted  # nothing submitted again
        second.delete(RES, "multi", partial.id, partial.properties)
        assert alive(emulator, "lyon", name) == [] and alive(emulator, "nancy", name) == []
        for blocker, site in zip(blockers, ("lyon", "nancy")):
            second.delete(JOB, f"all-{site}", blocker.id, blocker.properties)
    finally:
        first.stop()
        second.stop()
