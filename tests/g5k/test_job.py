"""testbed:g5k:Job over gRPC: the real plugin, the real python-grid5000 client, the emulator."""

from __future__ import annotations

import time

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2

from testbed_provider.protocol import codec
from testbed_provider.protocol.codec import UNKNOWN

from ..helpers import failures_of
from ..plugin.engine import init_failure
from .conftest import job_state

JOB = "testbed:g5k:Job"
SPEC = {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 2}], "vlan": {"type": "kavlan"}, "types": ["deploy"], "walltime": "1:00"}


def failures(response) -> dict[str, str]:
    return {f.property: f.reason for f in response.failures}


def test_check_against_the_reference_api(plugin, emulator):
    plugin.configure_g5k(emulator)
    assert failures(plugin.check_res(JOB, "j", SPEC)) == {}
    bad = failures(
        plugin.check_res(JOB, "j", {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 200}, {"cluster": "nope", "count": 1}]})
    )
    assert bad == {
        "nodes[0].count": "200 nodes requested but cluster `taurus` has only 14",
        "nodes[1].cluster": "no cluster `nope` at site `lyon` (clusters: nova, orion, pyxis, taurus)",
    }
    assert (
        "unknown Grid'5000 site `atlantis`" in failures(plugin.check_res(JOB, "j", {"site": "atlantis", "nodes": [{"count": 1}]}))["site"]
    )
    bad = failures(plugin.check_res(JOB, "j", {"site": "lyon", "nodes": [{"count": 1}], "walltime": "2 days", "reservation": "next week"}))
    assert set(bad) == {"walltime", "reservation"}


def test_lifecycle_preview_create_read_walltime_delete(plugin, emulator):
    plugin.configure_g5k(emulator)
    inputs = plugin.check_res(JOB, "exp", SPEC).inputs
    preview = codec.decode(plugin.create(JOB, "exp", inputs, preview=True).properties)
    assert preview["oarRequest"] == "{cluster='taurus'}/nodes=2+{type='kavlan'}/vlan=1,walltime=1:00:00"
    assert preview["uid"] is UNKNOWN and preview["assignedNodes"] is UNKNOWN
    assert emulator.control("GET", "calls")["calls"].get("POST /sites/{site}/jobs") is None  # preview submits nothing

    created = plugin.create(JOB, "exp", inputs)
    out = codec.decode(created.properties)
    site, uid = created.id.split(":")
    assert site == "lyon" and int(uid) == out["uid"]
    assert out["state"] == "running" and len(out["assignedNodes"]) == 2 and all("taurus" in n for n in out["assignedNodes"])
    assert out["vlans"] and out["oarRequest"] == preview["oarRequest"] and out["walltimeSeconds"] == 3600
    assert out["startedAt"] and out["endsAt"]
    assert any("submitting `{cluster='taurus'}" in m for m in plugin.engine.messages())

    read = plugin.read(JOB, "exp", created.id, created.properties, inputs)
    assert read.id == created.id and codec.decode(read.properties)["state"] == "running"

    # walltime: a change is in place (no replacement), both ways
    longer = plugin.check_res(JOB, "exp", {**SPEC, "walltime": "2:00"}, olds=codec.decode(inputs)).inputs
    diff = plugin.stub.Diff(
        provider_pb2.DiffRequest(
            id=created.id, urn=plugin.urn(JOB, "exp"), type=JOB, olds=created.properties, old_inputs=inputs, news=longer
        )
    )
    assert list(diff.diffs) == ["walltime"] and list(diff.replaces) == []
    updated = plugin.stub.Update(
        provider_pb2.UpdateRequest(
            id=created.id, urn=plugin.urn(JOB, "exp"), type=JOB, olds=created.properties, old_inputs=inputs, news=longer, timeout=60
        )
    )
    assert codec.decode(updated.properties)["walltimeSeconds"] == 7200
    other = plugin.check_res(JOB, "exp", {**SPEC, "nodes": [{"cluster": "orion", "count": 1}]}, olds=codec.decode(inputs)).inputs
    diff = plugin.stub.Diff(
        provider_pb2.DiffRequest(
            id=created.id, urn=plugin.urn(JOB, "exp"), type=JOB, olds=updated.properties, old_inputs=longer, news=other
        )
    )
    assert "nodes" in diff.replaces and diff.deleteBeforeReplace

    plugin.delete(JOB, "exp", created.id, updated.properties)
    assert job_state(emulator, "lyon", int(uid)) in ("error", "terminated")
    assert plugin.read(JOB, "exp", created.id, updated.properties, longer).id == ""  # gone: refresh drops it
    # destroying again (e.g. after a crash) tolerates `already killed`
    plugin.delete(JOB, "exp", created.id, updated.properties)


def test_killed_job_is_gone_on_refresh_and_import_by_site_uid(plugin, emulator):
    plugin.configure_g5k(emulator)
    inputs = plugin.check_res(JOB, "k", {"site": "nancy", "nodes": [{"count": 1}]}).inputs
    created = plugin.create(JOB, "k", inputs)
    uid = codec.decode(created.properties)["uid"]

    imported = plugin.read(JOB, "k", f"nancy:{uid}")  # `pulumi import testbed:g5k:Job k nancy:<uid>`
    assert imported.id == f"nancy:{uid}"
    assert codec.decode(imported.inputs)["site"] == "nancy" and codec.decode(imported.properties)["state"] == "running"
    with pytest.raises(grpc.RpcError) as err:
        plugin.read(JOB, "k", "nancy-42")
    assert "expected `<site>:<job uid>`" in err.value.details()

    emulator.control("POST", f"sites/nancy/jobs/{uid}/kill")
    emulator.wait_for(lambda: job_state(emulator, "nancy", uid) == "error")
    assert plugin.read(JOB, "k", created.id, created.properties, inputs).id == ""
    plugin.delete(JOB, "k", created.id, created.properties)  # already killed: fine


def test_timeout_keeps_the_waiting_job_in_state_then_destroy_deletes_it(plugin, emulator):
    plugin.configure_g5k(emulator)
    blocker = plugin.create(JOB, "all", plugin.check_res(JOB, "all", {"site": "lyon", "nodes": [{"cluster": "orion", "count": 12}]}).inputs)
    inputs = plugin.check_res(JOB, "late", {"site": "lyon", "nodes": [{"cluster": "orion", "count": 1}]}).inputs
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        plugin.create(JOB, "late", inputs, timeout=2)
    assert time.monotonic() - started < 15
    assert "timed out after 2 s" in err.value.details() and "kept in the stack" in err.value.details()
    partial = init_failure(err.value)
    assert partial is not None and partial.id.startswith("lyon:")
    outputs = codec.decode(partial.properties)
    assert outputs["state"] == "waiting" and outputs["oarRequest"] == "{cluster='orion'}/nodes=1,walltime=1:00:00"
    uid = int(partial.id.split(":")[1])
    assert job_state(emulator, "lyon", uid) == "waiting"
    assert any(f"job {partial.id} waiting" in m and "0 job(s) ahead in the default queue" in m for m in plugin.engine.messages())
    calls = emulator.control("GET", "calls")["calls"]
    assert calls["GET /sites/{site}/jobs/{uid}"] <= 12, calls  # 2 s of polling with back-off, not a storm

    plugin.delete(JOB, "late", partial.id, partial.properties)
    assert job_state(emulator, "lyon", uid) == "error"
    plugin.delete(JOB, "all", blocker.id, blocker.properties)


def test_refused_job_quotes_the_api_and_keeps_nothing(plugin, emulator):
    plugin.configure_g5k(emulator)
    inputs = plugin.check_res(JOB, "r", {"site": "lyon", "rawResources": "{cluster='taurus'}/nodes=1", "queue": "production"}).inputs
    with pytest.raises(grpc.RpcError) as err:
        plugin.create(JOB, "r", inputs)
    assert err.value.code() != grpc.StatusCode.INTERNAL and init_failure(err.value) is None
    assert "OAR refused the job on lyon" in err.value.details() and "Traceback" not in err.value.details()


def test_server_errors_are_retried_with_backoff(plugin, emulator):
    plugin.configure_g5k(emulator)
    inputs = plugin.check_res(JOB, "f", {"site": "rennes", "nodes": [{"count": 1}]}).inputs
    emulator.control("DELETE", "calls")
    emulator.control("POST", "faults", {"status": 503, "count": 3, "methods": ["GET"], "path": r"/jobs/\d+$"})
    emulator.control("POST", "faults", {"status": 503, "count": 2, "methods": ["POST"], "path": r"/jobs$"})
    created = plugin.create(JOB, "f", inputs)
    assert codec.decode(created.properties)["state"] == "running"
    calls = emulator.control("GET", "calls")["calls"]
    assert calls["POST /sites/{site}/jobs"] == 3  # a 503 was not processed: safe to repeat the POST
    assert len(alive_jobs(emulator, "rennes")) == 1
    assert 4 <= calls["GET /sites/{site}/jobs/{uid}"] <= 8  # 3 failures retried, no storm
    plugin.delete(JOB, "f", created.id, created.properties)


def test_bad_credentials_are_a_clear_error_without_the_password(plugin, emulator):
    config = {"backend": "g5k", "g5kUri": emulator.url, "g5kUsername": "alice", "g5kPassword": codec.Secret("wrong-password-123")}
    checked = plugin.stub.CheckConfig(
        provider_pb2.CheckRequest(urn="urn:pulumi:test::proj::pulumi:providers:testbed::default", news=codec.encode(config))
    )
    assert {f.property for f in failures_of(checked)} == {"g5kPassword"}
    assert "refused the credentials of `alice`" in failures_of(checked)[0].reason
    # the engine stops at a failing CheckConfig; configured anyway, operations fail clearly too
    plugin.stub.Configure(provider_pb2.ConfigureRequest(args=codec.encode(config), acceptSecrets=True))
    inputs = plugin.check_res(JOB, "c", {"site": "rennes", "nodes": [{"count": 1}]}).inputs
    with pytest.raises(grpc.RpcError) as err:
        plugin.create(JOB, "c", inputs)
    assert "refused the credentials" in err.value.details()
    assert "wrong-password-123" not in err.value.details() + plugin.stderr_text() + "".join(plugin.engine.messages())


def alive_jobs(emu, site: str) -> list[dict]:
    from g5k_emulator.testing import grid5000_client

    return [j.to_dict() for j in grid5000_client(emu).sites[site].jobs.list() if j.state not in ("error", "terminated")]


def test_engine_cancel_keeps_the_waiting_job_in_state(plugin, emulator):
    import threading

    plugin.configure_g5k(emulator)
    blocker = plugin.create(
        JOB, "all", plugin.check_res(JOB, "all", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 16}]}).inputs
    )
    inputs = plugin.check_res(JOB, "queued", {"site": "rennes", "nodes": [{"cluster": "parasilo", "count": 2}]}).inputs
    outcome: dict = {}

    def create():
        try:
            plugin.create(JOB, "queued", inputs, timeout=0)
        except grpc.RpcError as err:
            outcome["err"] = err

    thread = threading.Thread(target=create)
    thread.start()
    emulator.wait_for(lambda: len(alive_jobs(emulator, "rennes")) == 2, timeout=20)
    from google.protobuf import empty_pb2

    plugin.stub.Cancel(empty_pb2.Empty())
    thread.join(20)
    assert not thread.is_alive()
    partial = init_failure(outcome["err"])
    assert partial is not None and "interrupted while job" in outcome["err"].details()
    assert codec.decode(partial.properties)["state"] == "waiting"
    assert {j["uid"] for j in alive_jobs(emulator, "rennes")} == {int(partial.id.split(":")[1]), codec.decode(blocker.properties)["uid"]}


def test_unanswered_submission_never_leaks_a_job(emulator):
    from .conftest import FAST_POLL, G5kPlugin

    plugin = G5kPlugin(env=FAST_POLL)
    try:
        plugin.configure_g5k(emulator, g5kTimeout="1")
        inputs = plugin.check_res(JOB, "slow", {"site": "nancy", "nodes": [{"count": 1}]}).inputs
        emulator.control("POST", "faults", {"latency": 2, "count": 1, "methods": ["POST"], "path": r"/jobs$"})
        try:
            created = plugin.create(JOB, "slow", inputs)
        except grpc.RpcError as err:  # the POST never reached OAR: nothing may exist
            assert init_failure(err) is None and "timed out" in err.details().lower()
            assert alive_jobs(emulator, "nancy") == []
            return
        # it did reach OAR after our timeout: the job was found by name and adopted, not resubmitted
        uid = codec.decode(created.properties)["uid"]
        assert [j["uid"] for j in alive_jobs(emulator, "nancy")] == [uid]
        assert emulator.control("GET", "calls")["calls"]["POST /sites/{site}/jobs"] == 1
        plugin.delete(JOB, "slow", created.id, created.properties)
    finally:
        plugin.stop()


def test_slow_reads_time_out_and_are_retried(emulator):
    from .conftest import FAST_POLL, G5kPlugin

    plugin = G5kPlugin(env=FAST_POLL)
    try:
        plugin.configure_g5k(emulator, g5kTimeout="1")
        inputs = plugin.check_res(JOB, "lat", {"site": "nancy", "nodes": [{"count": 1}]}).inputs
        emulator.control("POST", "faults", {"latency": 3, "count": 2, "methods": ["GET"], "path": r"/jobs/\d+$"})
        created = plugin.create(JOB, "lat", inputs)
        assert codec.decode(created.properties)["state"] == "running"
        plugin.delete(JOB, "lat", created.id, created.properties)
    finally:
        plugin.stop()


def test_wait_until_scheduled_returns_an_advance_reservation_with_its_nodes(plugin, emulator):
    plugin.configure_g5k(emulator)
    start = emulator.now() + 7200
    import datetime as dt

    iso = dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat()
    inputs = plugin.check_res(
        JOB, "later", {"site": "lyon", "nodes": [{"cluster": "nova", "count": 3}], "reservation": iso, "waitUntil": "scheduled"}
    ).inputs
    emulator.control("DELETE", "calls")
    created = plugin.create(JOB, "later", inputs)
    out = codec.decode(created.properties)
    assert out["state"] == "waiting" and len(out["assignedNodes"]) == 3
    assert abs(dt.datetime.fromisoformat(out["scheduledAt"].replace("Z", "+00:00")).timestamp() - start) < 2
    assert sum(emulator.control("GET", "calls")["calls"].values()) <= 3  # POST (+ at most a refresh or two)
    assert plugin.read(JOB, "later", created.id, created.properties, inputs).id == created.id  # waiting is alive
    plugin.delete(JOB, "later", created.id, created.properties)
