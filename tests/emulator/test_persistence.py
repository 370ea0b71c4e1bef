"""A restarted emulator (same state file) resumes the same jobs, counters and clock."""

from __future__ import annotations

import signal

from g5k_emulator.testing import grid5000_client

from .conftest import wait_state


def test_jobs_survive_a_crash_and_a_clean_restart(start_emulator):
    emu = start_emulator()
    gk = grid5000_client(emu)
    site = gk.sites["rennes"]
    running = site.jobs.create({"name": "keep", "command": "sleep 1", "resources": "{cluster='roazhon'}/nodes=8,walltime=2:00:00"})
    wait_state(running, "running", emu, step=5)
    waiting = site.jobs.create({"name": "later", "command": "sleep 1", "resources": "{cluster='roazhon'}/nodes=1"})
    killed = site.jobs.create({"name": "gone", "command": "sleep 1"})
    site.jobs.delete(killed.uid)
    wait_state(site.jobs[killed.uid], "error")
    before = emu.now()
    old_pid = emu.pid

    emu.restart(signal.SIGKILL)  # a crash: no clean shutdown
    assert emu.pid != old_pid
    site = grid5000_client(emu).sites["rennes"]
    again = site.jobs[running.uid]
    assert again.state == "running" and again.assigned_nodes == running.assigned_nodes
    assert site.jobs[waiting.uid].state == "waiting"
    assert site.jobs[waiting.uid].scheduled_at == again.started_at + 7200
    assert site.jobs[killed.uid].state == "error"
    assert emu.now() >= before - 1.5  # the clock resumes (saved at least every second)
    new = site.jobs.create({"command": "sleep 1"})
    assert new.uid > killed.uid  # the id counter survived

    emu.restart(clock_speed=3600)  # a clean stop, and a faster clock
    assert emu.control("GET", "clock")["speed"] == 3600
    site = grid5000_client(emu).sites["rennes"]
    assert site.jobs[running.uid].state == "running"
    emu.advance(7200)
    started = wait_state(site.jobs[waiting.uid], ("running", "finishing", "error"), emu, step=5)
    assert started.started_at >= again.started_at + 7200  # it started when the first one ended
    assert site.jobs[running.uid].state in ("finishing", "error")
