"""The control API: faults (status bursts, latency), clock, outside kills, call counts; and the
client's own retry behaviour against them (GET 500/502/504 retried, POST never)."""

from __future__ import annotations

import time

import pytest
import requests
from grid5000.exceptions import Grid5000CreateError, Grid5000GetError

from .conftest import wait_state


def test_a_503_burst_hits_the_client_then_clears(gk, emu):
    emu.control("POST", "faults", {"status": 503, "count": 2, "methods": ["GET"], "path": "^/sites/rennes$"})
    for _ in range(2):
        with pytest.raises(Grid5000GetError) as err:
            gk.sites["rennes"]
        assert err.value.response_code == 503
    assert gk.sites["rennes"].uid == "rennes"
    assert gk.sites["lyon"].uid == "lyon"  # the path did not match
    assert emu.control("GET", "faults")["items"] == []


def test_get_500_is_retried_by_the_client_post_500_is_not(gk, emu):
    emu.control("DELETE", "calls")
    emu.control("POST", "faults", {"status": 500, "count": 2, "methods": ["GET"], "path": "/sites/nancy$"})
    assert gk.sites["nancy"].uid == "nancy"  # urllib3 retried twice behind our back
    assert emu.control("GET", "calls")["calls"]["GET /sites/{site}"] == 3
    emu.control("POST", "faults", {"status": 502, "count": 1, "methods": ["POST"], "path": "/jobs$"})
    with pytest.raises(Grid5000CreateError) as err:
        gk.sites["nancy"].jobs.create({"command": "x"})
    assert err.value.response_code == 502
    assert emu.control("GET", "calls")["calls"]["POST /sites/{site}/jobs"] == 1
    assert gk.sites["nancy"].jobs.create({"command": "x"}).uid


def test_latency_delays_matching_calls(gk, emu):
    emu.control("POST", "faults", {"latency": 0.5, "count": 1})
    t0 = time.monotonic()
    gk.sites.list()
    assert time.monotonic() - t0 >= 0.5
    assert emu.control("GET", "faults")["items"] == []  # used up: the next call is not delayed (however slow the machine)


def test_bad_fault_specs_are_422(emu):
    for spec in ({"status": 418}, {"count": 2}, {"status": 503, "path": "("}, {"latency": -1}):
        r = requests.post(f"{emu.root}/_emulator/faults", json=spec, timeout=10)
        assert r.status_code == 422, spec


def test_clock_speed_and_advance(emu):
    before = emu.control("GET", "clock")
    assert before["speed"] == 1.0
    after = emu.control("POST", "clock", {"advance": 86400})
    assert after["now"] - before["now"] >= 86400
    emu.control("POST", "clock", {"speed": 1000})
    t0 = emu.now()
    time.sleep(0.2)
    assert emu.now() - t0 >= 150
    assert requests.post(f"{emu.root}/_emulator/clock", json={"advance": -5}, timeout=10).status_code == 422


def test_kill_from_outside_ends_a_running_job(gk, emu):
    job = wait_state(gk.sites["lyon"].jobs.create({"command": "x"}), "running", emu, step=5)
    emu.control("POST", f"sites/lyon/jobs/{job.uid}/kill")
    wait_state(job, "error", emu, step=5)
    assert any(e["type"] == "SEND_KILL_JOB" for e in job.events)


def test_calls_are_counted_by_route_template_and_resettable(gk, emu):
    emu.control("DELETE", "calls")
    job = gk.sites["rennes"].jobs.create({"command": "x"})
    job.refresh()
    job.refresh()
    gk.sites["rennes"].jobs.delete(job.uid)
    calls = emu.control("GET", "calls")
    assert calls["calls"] == {
        "POST /sites/{site}/jobs": 1,
        "GET /sites/{site}": 2,  # gk.sites[...] twice
        "GET /sites/{site}/jobs/{uid}": 2,
        "DELETE /sites/{site}/jobs/{uid}": 1,
    }
    assert calls["total"] == 6


def test_ssh_slot_without_hosts(emu):
    assert emu.control("GET", "ssh")["user"] == "root"


def test_hold_and_resume_a_waiting_job(gk, emu):
    site = gk.sites["rennes"]
    blocker = wait_state(site.jobs.create({"command": "x", "resources": "{cluster='roazhon'}/nodes=8"}), "running", emu, step=5)
    job = site.jobs.create({"command": "x", "resources": "{cluster='roazhon'}/nodes=1"})
    emu.control("POST", f"sites/rennes/jobs/{job.uid}/hold")
    job.refresh()
    assert job.state == "hold" and job.assigned_nodes == []
    assert [j.uid for j in site.jobs.list(state="hold")] == [job.uid]
    blocker.delete()
    wait_state(blocker, "error", emu, step=5)
    job.refresh()
    assert job.state == "hold"  # held jobs are not scheduled
    emu.control("POST", f"sites/rennes/jobs/{job.uid}/resume")
    wait_state(job, "running", emu, step=5)
    r = requests.post(f"{emu.root}/_emulator/sites/rennes/jobs/{job.uid}/hold", timeout=10)
    assert r.status_code == 422
