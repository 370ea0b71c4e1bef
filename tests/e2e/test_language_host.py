"""Our Python language host (engine/pulumi-language-python) under the real `pulumi` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .stack import Stack

DEADLINE = 180.0  # generous: the host notices a dead engine within seconds on an idle machine


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after `pid (comm) `
    return int(fields[1]), fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int, started: int) -> bool:
    st = _stat(pid)
    return st is not None and st[2] == started and st[1] != "Z"  # same process, not a zombie


def _wait(
    predicate,
    what: str,
    deadline: float = DEADLINE,
    proc: subprocess.Popen | None = None,
) -> None:
    limit = time.monotonic() + deadline
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"pulumi exited ({proc.returncode}) before {what}")
        if time.monotonic() > limit:
            raise AssertionError(f"{what}: not within {deadline:.0f} s")
        time.sleep(0.2)


@pytest.mark.parametrize("victim", ["pulumi", "language host"])
def test_nothing_outlives_a_killed_engine_or_language_host(tmp_path, victim):
    """`pulumi` killed abruptly (SIGKILL, or SIGPIPE in `pulumi preview | head`) must not leave
    its language host, nor the program it runs, behind under PID 1; nor a language host killed
    abruptly its program, even while the engine cannot react (stopped): only the kernel's
    parent-death signal can stop the program then."""
    stack = Stack(tmp_path, example="blocked", stack="dev")
    started = tmp_path / "program-started"
    with open(tmp_path / "preview.log", "wb") as log:  # the child keeps its own copy
        engine = subprocess.Popen(
            ["pulumi", "preview", "--non-interactive"],
            cwd=stack.dir,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**stack.env, "BLOCKED_PROGRAM_STARTED": str(started)},
        )
    watched: dict[int, int] = {}
    try:
        _wait(
            lambda: started.exists() and started.read_text().strip(),
            "the program ran",
            proc=engine,
        )
        program = int(started.read_text())
        hosts = [p for p in _descendants(engine.pid) if "pulumi-language-python" in _cmdline(p)]
        st = _stat(program)
        host = st[0] if st else 0
        assert program in hosts and host in hosts, f"no language host above the program: {hosts}"
        watched = {p: st[2] for p in hosts if (st := _stat(p)) is not None}  # every host of the run, and the program

        if victim == "language host":
            engine.send_signal(signal.SIGSTOP)
            os.kill(host, signal.SIGKILL)
            _wait(
                lambda: not _alive(program, watched[program]),
                "the program exited with its language host",
            )
        engine.send_signal(signal.SIGKILL)
        engine.wait(30)
        _wait(
            lambda: not any(_alive(p, t) for p, t in watched.items()),
            "the language host and its program exited",
        )
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        for pid, start in watched.items():  # leave nothing behind when the test fails
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)
