"""The manifest's rules for interrupted creates, on real processes: a creator killed but not
yet reaped (a zombie) is gone, and only one releaser at a time may claim a leftover."""

from __future__ import annotations

import os
import subprocess
import time

from testbed_provider.common import pids
from testbed_provider.testbeds.local import manifest


def zombie() -> subprocess.Popen:
    """A child that has exited and is not reaped yet: what a SIGKILLed plugin is until the
    engine gets to wait for it."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 30
    while pids.running(child.pid):
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    return child


def test_a_killed_creator_not_yet_reaped_is_gone():
    child = zombie()
    try:
        started = pids.start_time(child.pid)
        assert started is not None  # /proc still lists it...
        assert not manifest.creator_alive({"creatorPid": child.pid, "creatorStartTime": started})  # ...but it has exited
    finally:
        child.wait()
    me = os.getpid()
    assert manifest.creator_alive({"creatorPid": me, "creatorStartTime": pids.start_time(me)})
    assert not manifest.creator_alive({"creatorPid": me, "creatorStartTime": 1})  # a reused pid


def test_one_releaser_at_a_time_claims_an_interrupted_create(tmp_path):
    prefix = "tb-unit-abcdef-"
    run_dir = manifest.make_run_dir(str(tmp_path), prefix)
    child = zombie()
    child.wait()  # gone for good
    manifest.write(
        run_dir,
        {
            "owner": "urn:pulumi:dev::p::testbed:index:Reservation::r",
            "prefix": prefix,
            "status": manifest.CREATING,
            "creatorPid": child.pid,
            "creatorStartTime": 0,
        },
    )
    by_stack = manifest.orphans(str(tmp_path), "urn:pulumi:dev::p::")
    assert by_stack == manifest.orphans(str(tmp_path), "urn:pulumi:dev::p::testbed:index:Reservation::r") and len(by_stack) == 1
    assert manifest.orphans(str(tmp_path), "urn:pulumi:prod::p::") == []  # another stack's sweep leaves it
    with manifest.claim(run_dir) as first:
        assert first is not None and first["prefix"] == prefix
        with manifest.claim(run_dir) as second:
            assert second is None  # someone is releasing it
    with manifest.claim(run_dir) as again:
        assert again is not None
    manifest.set_status(run_dir, manifest.READY)
    with manifest.claim(run_dir) as finished:
        assert finished is None  # a create that returned is no leftover
