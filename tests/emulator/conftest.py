"""Emulator tests: the emulator's CLI as a subprocess, driven by the real python-grid5000 client."""

from __future__ import annotations

import time
from typing import Any

import pytest

from g5k_emulator.testing import EmulatorProcess, grid5000_client


@pytest.fixture
def start_emulator(tmp_path) -> Any:
    """Factory: start_emulator(**options) → a started EmulatorProcess, stopped at teardown."""
    started: list[EmulatorProcess] = []

    def start(**options: Any) -> EmulatorProcess:
        emu = EmulatorProcess(tmp_path / f"emu{len(started)}", **options)
        started.append(emu)
        return emu.start()

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(start_emulator) -> EmulatorProcess:
    """An emulator whose clock runs at real speed (tests move it with `advance`), users alice and bob."""
    return start_emulator(users=["alice:x", "bob:y"])


@pytest.fixture
def gk(emu) -> Any:
    return grid5000_client(emu)


def client_as(emu: EmulatorProcess, username: str, password: str) -> Any:
    from grid5000 import Grid5000

    gk = Grid5000(uri=emu.url, username=username, password=password, verify_ssl=False, timeout=30)
    assert gk._uri == emu.url
    return gk


def wait_state(job: Any, wanted: str | tuple[str, ...], emu: EmulatorProcess | None = None, step: float = 0, timeout: float = 20.0) -> Any:
    """Refresh `job` until its state is one of `wanted`; advance the clock by `step` each time."""
    wanted = (wanted,) if isinstance(wanted, str) else wanted
    deadline = time.monotonic() + timeout
    while True:
        job.refresh()
        if job.state in wanted:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job.uid} stayed {job.state}, wanted {wanted}")
        if emu is not None and step:
            emu.advance(step)
        time.sleep(0.02)


def paris_in(emu: EmulatorProcess, seconds: float) -> str:
    from g5k_emulator.jobs import paris

    return paris(emu.now() + seconds)
