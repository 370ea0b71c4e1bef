"""What the local testbed must not leave behind, seen through the real engine (issue 10):
a host whose namespace was deleted outside Pulumi (its sshd lives on in a namespace no name
leads to), and a reservation whose create was interrupted by a killed provider."""

from __future__ import annotations

import subprocess
import time

import pytest

from testbed_provider.common.pids import start_time as process_start_time

from ..helpers import IS_ROOT, namespaces_of
from .interrupt import Interrupted, kill_mid_create
from .stack import Stack


def recorded_sshd(stack, host: str) -> tuple[int, int]:
    """The host's sshd pid in the stack's state, and its start time as /proc tells it now."""
    pid = stack.reservation()["outputs"]["testbedState"]["local"]["hosts"][host]["sshdPid"]
    started = process_start_time(pid)
    assert started is not None, f"{host}'s sshd ({pid}) is not running"
    return pid, started


def running(pid: int, started: int) -> bool:
    """That very process still runs (a reused pid has another start time; a zombie waiting for
    its parent to reap it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and process_start_time(pid) == started


def delete_namespace(stack, host: str) -> None:
    namespace = stack.reservation()["outputs"]["testbedState"]["local"]["hosts"][host]["namespace"]
    subprocess.run(["ip", "netns", "del", namespace], check=True)


def test_a_host_whose_namespace_was_deleted_out_of_band_leaks_no_sshd(stack):
    stack.up()
    rid = stack.reservation()["id"]
    server = recorded_sshd(stack, "server-1")
    delete_namespace(stack, "server-1")
    assert running(*server)  # still serving, in a namespace nothing names any more

    repair = stack.up("--refresh")
    assert not running(*server), f"the old sshd of server-1 ({server[0]}) outlived the repair:\n{repair.stdout}"
    assert "whose namespace was deleted outside Pulumi" in repair.stdout, repair.stdout
    assert [h["name"] for h in stack.reservation()["outputs"]["hosts"]] == ["server-1", "client-1"]
    assert recorded_sshd(stack, "server-1")[0] != server[0]

    client = recorded_sshd(stack, "client-1")
    delete_namespace(stack, "client-1")
    stack.run("destroy", "--yes", "--skip-preview")
    assert not running(*client), f"the sshd of client-1 ({client[0]}) outlived destroy"
    assert namespaces_of(rid) == set()


def gone(cut: Interrupted, timeout: float = 60) -> list[str]:
    """Wait until nothing of the interrupted reservation is left; what is left after `timeout`."""
    deadline = time.monotonic() + timeout
    while (left := cut.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_provider_killed_mid_create_then_destroy_leaves_nothing(stack):
    cut = kill_mid_create(stack, "nodes")
    assert cut.sshds, "the create was stopped before any sshd started"
    assert stack.resources()[-1]["type"] == "pulumi:providers:testbed"  # the Reservation is in no state
    stack.run("destroy", "--yes", "--skip-preview")
    assert gone(cut) == [], "the partial reservation outlived destroy"


@pytest.mark.parametrize("command", ["refresh", "destroy"])
def test_configure_releases_what_an_interrupted_create_left(tmp_path, command):
    """With another Reservation in the state, refresh and destroy load the provider: its
    Configure releases the stack's interrupted creates (here their watchdog was killed too)."""
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    s = Stack(tmp_path, example="pair")
    try:
        cut = kill_mid_create(s, "second", kill_watchdog=True)
        assert cut.sshds and cut.run_dir in cut.leftovers()  # nothing cleaned up by itself
        out = s.run(command, "--yes", "--skip-preview")
        assert f"releasing {cut.id}, left over by an interrupted create" in out.stdout, out.stdout
        assert cut.leftovers() == []
    finally:
        s.destroy()
