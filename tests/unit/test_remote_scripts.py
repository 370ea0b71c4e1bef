"""The remote shell scripts, run here with the system /bin/sh under a scratch HOME (no hosts)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from testbed_provider.remote import scripts


@pytest.fixture
def home(tmp_path):
    return tmp_path


def sh(home, script: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    return subprocess.run(["/bin/sh", "-s"], input=script, capture_output=True, text=True, env=env, timeout=timeout)


def state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_step_script_quotes_the_command_and_exports_the_environment(home):
    env = {"A": "x y", "B": 'it\'s $HOME `z` "q"\nnext'}
    r = sh(home, scripts.step_script("printf '%s|' \"$A\" \"$B\" '$HOME'; exit 4", "run1", env))
    assert (r.returncode, r.stdout, r.stderr) == (4, 'x y|it\'s $HOME `z` "q"\nnext|$HOME|', "")
    assert not os.path.exists(home / ".testbed" / "run" / "run1")  # forgotten once finished


def test_step_script_reads_no_stdin_and_sets_a_utf8_ctype_like_ansibles_python(home):
    r = sh(home, scripts.step_script('cat; echo "rc=$? ctype=$LC_CTYPE"', "run2"))
    assert r.stdout == "rc=0 ctype=C.UTF-8\n"
    r = sh(home, scripts.step_script('echo "${LC_CTYPE-unset}"', "run3", {"LC_ALL": "C"}))
    assert r.stdout == "unset\n"


def test_kill_script_stops_a_running_step_and_its_children(home):
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(["/bin/sh", "-s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    proc.stdin.write(scripts.step_script("sleep 60 & echo $!; wait", "run4"))
    proc.stdin.close()
    child = int(proc.stdout.readline())
    pidfile = home / ".testbed" / "run" / "run4"
    assert pidfile.read_text().strip() == str(proc.pid)  # the wrapper's process group
    t0 = time.monotonic()
    r = sh(home, scripts.kill_script("run4"))
    assert r.returncode == 0 and time.monotonic() - t0 < 3
    assert proc.wait(5) == -15
    assert state(child) in ("gone", "Z")
    assert not pidfile.exists()
    assert sh(home, scripts.kill_script("run4")).returncode == 0  # nothing left: fine


def test_background_start_stop_and_restart(home):
    r = sh(home, scripts.bg_start_script("echo hello; exec sleep 60", "t1", {"X": "1"}))
    assert r.returncode == 0 and "process group" in r.stdout
    bg = home / ".testbed" / "bg"
    pid = int((bg / "t1.pid").read_text())
    assert state(pid) in ("S", "R")
    assert (bg / "t1.start").read_text().strip().isdigit()
    assert (bg / "t1.log").read_text() == "hello\n"
    refused = sh(home, scripts.bg_start_script("sleep 1", "t1"))
    assert refused.returncode == 1 and "already running" in refused.stderr
    stopped = sh(home, scripts.bg_stop_script("t1"))
    assert (stopped.returncode, stopped.stdout) == (0, f"stopped process group {pid}\n")
    assert state(pid) in ("gone", "Z") and not (bg / "t1.pid").exists()
    again = sh(home, scripts.bg_stop_script("t1"))
    assert (again.returncode, again.stdout) == (0, "not running (no pidfile)\n")
    assert sh(home, scripts.bg_start_script("exec sleep 60", "t1")).returncode == 0
    assert sh(home, scripts.bg_stop_script("t1")).returncode == 0


def test_background_failure_within_the_settle_time_is_reported(home):
    r = sh(home, scripts.bg_start_script("echo partial; exit 9", "t2"))
    assert (r.returncode, r.stderr) == (9, "partial\n")
    assert not (home / ".testbed" / "bg" / "t2.pid").exists()
    ok = sh(home, scripts.bg_start_script("true", "t3"))
    assert ok.returncode == 0 and "exited at once with status 0" in ok.stdout


def test_a_stale_pidfile_never_kills_a_process_that_reused_the_pid(home):
    """The recorded start time does not match: the process is someone else's and is left alone."""
    victim = subprocess.Popen(["sleep", "60"])
    try:
        bg = home / ".testbed" / "bg"
        bg.mkdir(parents=True)
        (bg / "t4.pid").write_text(f"{victim.pid}\n")
        (bg / "t4.start").write_text("1\n")  # not the victim's start time
        r = sh(home, scripts.bg_stop_script("t4"))
        assert r.returncode == 0 and "not running any more" in r.stdout
        assert victim.poll() is None
        assert not (bg / "t4.pid").exists()
        (bg / "t4.pid").write_text(f"{victim.pid}\n")  # nor does a start refuse because of it
        assert sh(home, scripts.bg_start_script("true", "t4")).returncode == 0
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("tag", ["ok", "cmd-0123abcd", "a.b_c-d"])
def test_valid_tags(tag):
    assert scripts.TAG.match(tag)


@pytest.mark.parametrize("tag", ["", "../x", "-x", ".hidden", "a b", "a/b", "x" * 102, "a;b"])
def test_invalid_tags(tag):
    assert not scripts.TAG.match(tag)
