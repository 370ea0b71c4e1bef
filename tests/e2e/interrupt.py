"""Killing the provider plugin in the middle of a local Reservation's create, under the real
engine, deterministically: `pulumi up` runs until the create's manifest appears; the plugin is
then frozen (SIGSTOP) and only let run in short slices until one of its hosts' sshd has started,
so the kill (SIGKILL) always lands while the create is still under way."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from testbed_provider.common.pids import start_time as process_start_time

RUN_ROOT = "/tmp/pulumi-testbed"


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "a condition") -> object:
    """Poll `condition` until it holds (the timeout only bounds a failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def alive(pid: int, started: int | None) -> bool:
    """That very process runs (not a zombie, and the pid not reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and (started is None or process_start_time(pid) == started)


@dataclass
class Interrupted:
    run_dir: str
    prefix: str
    manifest: dict
    sshds: list[tuple[int, int]]  # (pid, start time) of the hosts' sshd that had started
    up: subprocess.CompletedProcess

    @property
    def id(self) -> str:
        return self.prefix.rstrip("-")

    def leftovers(self) -> list[str]:
        """What of the reservation still exists: namespaces, processes, the run dir."""
        names = [n for n in os.listdir("/run/netns") if n.startswith(self.prefix)] if os.path.isdir("/run/netns") else []
        procs = [f"sshd {pid}" for pid, started in self.sshds if alive(pid, started)]
        return names + procs + ([self.run_dir] if os.path.exists(self.run_dir) else [])


def _manifest(stack, resource: str) -> tuple[str, dict] | None:
    """The create's manifest: this resource, created by a plugin of this test's `pulumi` (its
    environment names the test's private PULUMI_HOME; other tests may run the same project)."""
    mark = f"PULUMI_HOME={stack.env['PULUMI_HOME']}\0".encode()
    for path in glob.glob(os.path.join(RUN_ROOT, "*", "manifest.json")):
        try:
            data = json.load(open(path))
            with open(f"/proc/{data['creatorPid']}/environ", "rb") as f:
                environ = f.read() + b"\0"
        except (OSError, ValueError, KeyError):
            continue
        if str(data.get("owner", "")).endswith("::" + resource) and data.get("status") == "creating" and mark in environ:
            return os.path.dirname(path), data
    return None


def _started_sshds(run_dir: str) -> list[tuple[int, int]]:
    found = []
    for path in glob.glob(os.path.join(run_dir, "hosts", "*", "run", "sshd.pid")):
        try:
            pid = int(open(path).read().strip())
        except (OSError, ValueError):
            continue
        started = process_start_time(pid)
        if started is not None:
            found.append((pid, started))
    return found


def kill_mid_create(stack, resource: str, kill_watchdog: bool = False) -> Interrupted:
    """`pulumi up` of `stack`, its plugin SIGKILLed while creating `resource` (and, with
    `kill_watchdog`, the create's watchdog first: then nothing cleans up by itself)."""
    up = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"],
        cwd=stack.dir,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    creator, started = 0, None
    try:
        run_dir, data = wait_for(lambda: _manifest(stack, resource), what=f"the create of {resource} to start")  # type: ignore[misc]
        creator, started = data["creatorPid"], data["creatorStartTime"]
        assert alive(creator, started)
        os.kill(creator, signal.SIGSTOP)
        while not _started_sshds(run_dir):  # let it run in short slices until a host's sshd is up
            os.kill(creator, signal.SIGCONT)
            time.sleep(0.005)
            os.kill(creator, signal.SIGSTOP)
        data = json.load(open(os.path.join(run_dir, "manifest.json")))
        assert data["status"] == "creating", data  # frozen mid-create
        if kill_watchdog:
            watchdog = data["watchdogPid"]
            os.kill(watchdog, signal.SIGKILL)
            wait_for(lambda: not alive(watchdog, None), what="the watchdog to die")
        sshds = _started_sshds(run_dir)
        os.kill(creator, signal.SIGKILL)
        out, _ = up.communicate(timeout=300)
    finally:
        if creator and alive(creator, started):  # the test failed with the plugin frozen: end it as planned
            os.kill(creator, signal.SIGKILL)
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode != 0, out
    return Interrupted(run_dir, data["prefix"], data, sshds, subprocess.CompletedProcess(up.args, up.returncode, out, ""))
