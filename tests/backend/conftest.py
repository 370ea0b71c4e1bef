"""Backend tests run real namespaces: they need root and the local backend's tools."""

from __future__ import annotations

import asyncio
import os

import pytest
import pytest_asyncio

from testbed_provider.testbeds.base import ReservationError, ReservationSpec
from testbed_provider.testbeds.local import LocalTestbed
from testbed_provider.testbeds.local.naming import switch_namespace

_why_not = None if os.geteuid() == 0 else "the local testbed needs root (network and mount namespaces)"
if _why_not is None:
    _why_not = LocalTestbed().preflight()


def pytest_collection_modifyitems(config, items):
    if _why_not:
        skip = pytest.mark.skip(reason=_why_not)
        for item in items:
            if "tests/backend/" in str(item.fspath):
                item.add_marker(skip)


class Beds:
    """Reserves through LocalTestbed and remembers everything so teardown can release it all."""

    def __init__(self, run_root: str):
        self.run_root = run_root
        self.messages: list[str] = []
        self.states: list[dict] = []

    def testbed(self, **kw) -> LocalTestbed:
        return LocalTestbed(run_root=self.run_root, **kw)

    async def progress(self, message: str) -> None:
        self.messages.append(message)

    async def reserve(self, spec: ReservationSpec, owner: str = "urn:test", testbed: LocalTestbed | None = None) -> dict:
        try:
            state = await (testbed or self.testbed()).reserve(spec, owner, self.progress)
        except ReservationError as err:
            if err.state:
                self.states.append(err.state)
            raise
        self.states.append(state)
        return state

    async def release_all(self) -> None:
        """Release every recorded state, then anything else with a run dir under our run root
        (each run dir is named by its reservation's prefix), so nothing leaks even on failure."""
        testbed = self.testbed()
        for state in self.states:
            await testbed.release(state, self.progress)
        if os.path.isdir(self.run_root):
            for prefix in os.listdir(self.run_root):
                run_dir = os.path.join(self.run_root, prefix)
                await testbed.release(
                    {
                        "backend": "local",
                        "id": prefix.rstrip("-"),
                        "hosts": [],
                        "networks": [],
                        "local": {"prefix": prefix, "runDir": run_dir, "switchNamespace": switch_namespace(prefix), "hosts": {}},
                    },
                    self.progress,
                )


@pytest_asyncio.fixture
async def beds(tmp_path):
    b = Beds(str(tmp_path / "run"))
    try:
        yield b
    finally:
        await asyncio.wait_for(b.release_all(), 60)
