"""The shared helpers' guarantees, on real files and real processes: private files are atomic,
private and never written through a symlink; a child process never outlives the call that ran
it; a wait abandoned on Cancel or at its deadline leaves nothing running."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time

import pytest

from testbed_provider.common import deadlines, pids, processes
from testbed_provider.common.private_files import write_private


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_private_file_is_0600_whatever_the_umask_and_replaced_atomically(tmp_path):
    path = tmp_path / "id"
    old = os.umask(0)
    try:
        write_private(str(path), "first")
        first = os.stat(path).st_ino
        write_private(str(path), b"second")
    finally:
        os.umask(old)
    assert path.read_text() == "second" and mode(path) == 0o600
    assert os.stat(path).st_ino != first  # a new file took its place (a reader sees one or the other)
    assert os.listdir(tmp_path) == ["id"]  # no temporary file left
    write_private(str(tmp_path / "known_hosts"), "k\n", 0o644)
    assert mode(tmp_path / "known_hosts") == 0o644


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "key"
    link.symlink_to(victim)
    write_private(str(link), "secret")
    assert victim.read_text() == "untouched"
    assert not link.is_symlink() and link.read_text() == "secret" and mode(link) == 0o600


@pytest.mark.asyncio
async def test_run_kills_at_the_deadline_and_keeps_what_was_printed():
    t0 = time.monotonic()
    done = await processes.run(["sh", "-c", "echo started; exec sleep 60"], env=processes.SAFE_ENV, deadline=deadlines.after(0.5))
    assert done.outcome == processes.TIMED_OUT and done.stdout == b"started\n"
    assert time.monotonic() - t0 < 30
    assert done.returncode is not None  # killed and waited for: no zombie, nothing left running


@pytest.mark.asyncio
async def test_nothing_starts_once_cancel_was_asked():
    cancelled = asyncio.Event()
    cancelled.set()
    done = await processes.run(["sh", "-c", "echo ran"], env=processes.SAFE_ENV, cancelled=cancelled)
    assert done.outcome == processes.CANCELLED and done.returncode is None and done.stdout == b""


@pytest.mark.asyncio
async def test_a_child_is_reaped_when_its_block_fails():
    with pytest.raises(RuntimeError):
        async with processes.child(["sleep", "60"], env=processes.SAFE_ENV) as proc:
            pid = proc.pid
            raise RuntimeError("the caller gave up")
    assert proc.returncode is not None and not pids.running(pid)


@pytest.mark.asyncio
async def test_a_cancelled_caller_leaves_no_child_running():
    started = asyncio.Event()
    seen: list[int] = []

    async def caller() -> None:
        async with processes.child(["sleep", "60"], env=processes.SAFE_ENV) as proc:
            seen.append(proc.pid)
            started.set()
            await asyncio.sleep(60)

    task = asyncio.ensure_future(caller())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pids.running(seen[0])


def test_reap_sync_signals_then_kills_what_ignores_it():
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"])
    code = processes.reap_sync(proc, grace=0.5, sig=15)
    assert code in (-9, -15) and proc.poll() is not None  # TERM if it came before the trap, else KILL


@pytest.mark.asyncio
async def test_wait_or_raise_stops_what_it_abandons():
    cancelled = asyncio.Event()
    finished = []

    async def work() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            finished.append("stopped")

    asyncio.get_running_loop().call_later(0.1, cancelled.set)
    with pytest.raises(deadlines.Cancelled):
        await deadlines.wait_or_raise(work(), None, cancelled)
    assert finished == ["stopped"]
    with pytest.raises(TimeoutError):
        await deadlines.wait_or_raise(asyncio.sleep(60), deadlines.after(0.05), None)


@pytest.mark.asyncio
async def test_sleep_ends_early_on_cancel():
    cancelled = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, cancelled.set)
    t0 = time.monotonic()
    with pytest.raises(deadlines.Cancelled):
        await deadlines.sleep(60, cancelled)
    assert time.monotonic() - t0 < 30
    assert deadlines.remaining(None) is None and deadlines.passed(deadlines.after(-1))
