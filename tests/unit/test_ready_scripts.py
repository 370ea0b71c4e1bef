"""Background commands that say when they are ready: the start script waits on the host until a
TCP socket listens on the port and/or the ready command exits 0 (run here with the system
/bin/sh under a scratch HOME; the gates are files the test creates, never a sleep)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from testbed_provider.remote import scripts
from testbed_provider.remote.scripts import Readiness

from .test_remote_scripts import sh, state

LISTEN = (
    "python3 -c 'import signal,socket,sys; s=socket.socket(); s.bind((\"127.0.0.1\", int(sys.argv[1]))); s.listen(); signal.pause()' {port}"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home, command: str, tag: str, ready: Readiness) -> subprocess.Popen:
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    proc = subprocess.Popen(["/bin/sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdin is not None
    proc.stdin.write(scripts.bg_start_script(command, tag, ready=ready))
    proc.stdin.close()
    proc.stdin = None  # (communicate() would flush it)
    return proc


def wait_for(path, proc: subprocess.Popen) -> None:
    """Until `path` exists (the background command started): the start script must still wait."""
    while not os.path.exists(path):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    assert proc.poll() is None, "reported before anything was ready"


def group_of(home, tag: str) -> int:
    return int((home / ".testbed" / "bg" / f"{tag}.pid").read_text())


@pytest.fixture
def home(tmp_path):
    return tmp_path


def test_waits_until_the_port_listens_then_reports_how_long_it_took(home):
    port, gate = free_port(), home / "gate"
    proc = start(
        home,
        f"touch ~/started; while [ ! -e {gate} ]; do sleep 0.05; done; exec {LISTEN.format(port=port)}",
        "r1",
        Readiness(port=port, timeout=60),
    )
    wait_for(home / "started", proc)
    gate.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("started in the background: process group ") and f"(TCP port {port} listening)" in out
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # it really listens
    assert sh(home, scripts.bg_stop_script("r1")).returncode == 0


def test_a_port_never_listening_fails_in_time_and_stops_the_command(home):
    port = free_port()
    r = sh(home, scripts.bg_start_script("echo serving; echo $$ >~/pid; exec sleep 300", "r2", ready=Readiness(port=port, timeout=0.5)))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "serving"  # its log first,
    assert lines[-1] == f"not ready after 0.5 s: nothing listens on TCP port {port} (the command was stopped; its log is above)"
    assert not (home / ".testbed" / "bg" / "r2.pid").exists()
    assert state(int((home / "pid").read_text())) in ("gone", "Z")


def test_a_command_exiting_before_it_is_ready_fails_with_its_status(home):
    r = sh(home, scripts.bg_start_script("echo cannot bind >&2; exit 4", "r3", ready=Readiness(port=free_port(), timeout=60)))
    assert r.returncode == 4 and r.stderr.splitlines() == [
        "cannot bind",
        "the command exited with status 4 before it was ready (its log is above)",
    ]
    r = sh(home, scripts.bg_start_script("true", "r4", ready=Readiness(port=free_port(), timeout=60)))
    assert r.returncode == 1 and r.stderr.splitlines()[-1] == "the command exited with status 0 before it was ready (its log is above)"


def test_a_port_in_use_before_the_start_is_refused(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = sh(home, scripts.bg_start_script("touch ~/ran; exec sleep 300", "r5", ready=Readiness(port=port, timeout=60)))
    assert r.returncode == 1 and f"TCP port {port} is already in use on this host before the command started" in r.stderr
    assert not (home / "ran").exists() and not (home / ".testbed" / "bg" / "r5.pid").exists()


def test_a_ready_command_is_tried_until_it_exits_0(home):
    gate = home / "gate"
    proc = start(home, "touch ~/started; exec sleep 300", "r6", Readiness(command=f"test -e {gate}", timeout=60))
    wait_for(home / "started", proc)
    gate.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "(the ready command exiting 0)" in out, err
    pid = group_of(home, "r6")
    assert state(pid) in ("S", "R")
    assert sh(home, scripts.bg_stop_script("r6")).returncode == 0


def test_a_ready_command_that_never_succeeds_says_how_it_last_failed(home):
    r = sh(home, scripts.bg_start_script("exec sleep 300", "r7", ready=Readiness(command="echo 'not yet'; exit 3", timeout=0.5)))
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (
        "not ready after 0.5 s: the ready command last exited with status 3: not yet (the command was stopped; its log is above)"
    )
    hung = sh(home, scripts.bg_start_script("exec sleep 300", "r8", ready=Readiness(command="exec sleep 300", timeout=1)))
    assert "the ready command last exited with status 124 (timed out)" in hung.stderr  # a hanging try is cut at the deadline


def test_port_and_command_must_both_hold(home):
    port, gate = free_port(), home / "gate"
    proc = start(
        home, f"touch ~/started; exec {LISTEN.format(port=port)}", "r9", Readiness(port=port, command=f"test -e {gate}", timeout=60)
    )
    wait_for(home / "started", proc)
    while sh(home, f"grep -qi ':{port:04X} 00000000:0000 0A' /proc/net/tcp && echo yes || true").stdout.strip() != "yes":
        assert proc.poll() is None
    assert proc.poll() is None, "the port alone is not enough"
    gate.touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and f"(TCP port {port} listening and the ready command exiting 0)" in out, err
    assert sh(home, scripts.bg_stop_script("r9")).returncode == 0
