"""A restarted emulator (same state file) resumes the same jobs, counters and clock."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3

import pytest

from g5k_emulator.testing import EmulatorProcess, grid5000_client

from .conftest import wait_state


def saved_clock(emu: EmulatorProcess) -> float:
    """The emulated time the state file holds (what a crashed emulator resumes from)."""
    with contextlib.closing(sqlite3.connect(f"file:{emu.state_file}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT data FROM objects WHERE kind = 'meta' AND key = 'clock'").fetchone()
    return float(json.loads(row[0])["now"]) if row else 0.0


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
    emu.wait_for(lambda: saved_clock(emu) >= before, timeout=30)  # saved every second, however busy the machine
    old_pid = emu.pid

    emu.restart(signal.SIGKILL)  # a crash: no clean shutdown
    assert emu.pid != old_pid
    site = grid5000_client(emu).sites["rennes"]
    again = site.jobs[running.uid]
    assert again.state == "running" and again.assigned_nodes == running.assigned_nodes
    assert site.jobs[waiting.uid].state == "waiting"
    assert site.jobs[waiting.uid].scheduled_at == again.started_at + 7200
    assert site.jobs[killed.uid].state == "error"
    assert emu.now() >= before  # the clock resumes from where it was saved
    new = site.jobs.create({"command": "sleep 1"})
    assert new.uid > killed.uid  # the id counter survived

    # A clean stop, and a faster clock; not so fast that the first job's 2 h run out while the test
    # looks at it (at 3600x they were 2 s): the test moves the clock itself.
    emu.restart(clock_speed=2)
    assert emu.control("GET", "clock")["speed"] == 2
    site = grid5000_client(emu).sites["rennes"]
    assert site.jobs[running.uid].state == "running"
    emu.advance(7200)
    started = wait_state(site.jobs[waiting.uid], ("running", "finishing", "error"), emu, step=5)
    assert started.started_at >= again.started_at + 7200  # it started when the first one ended
    assert site.jobs[running.uid].state in ("finishing", "error")


def test_a_second_start_is_refused_and_the_running_emulator_kept(emu):
    """start() on a running emulator would orphan it (its namespaces, its DHCP server): refused."""
    pid = emu.pid
    with pytest.raises(RuntimeError, match="already runs"):
        emu.start()
    assert emu.pid == pid and emu.proc is not None and emu.proc.poll() is None
