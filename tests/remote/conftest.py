"""Remote-layer tests run commands on real local hosts: root and the local backend's tools.

One 3-host reservation (server-1; client-1, client-2) serves the whole module; tests that break
a host get their own. Every fixture releases what it reserved and stops the SSH ControlMasters
the remote layer opened, even when a test fails.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from testbed_provider.protocol.codec import reveal
from testbed_provider.remote import materialize
from testbed_provider.resources.reservation import outputs_from_state
from testbed_provider.testbeds.base import MachineGroup, ReservationError, ReservationSpec
from testbed_provider.testbeds.local import LocalTestbed
from testbed_provider.testbeds.local.naming import switch_namespace

_why_not = None if os.geteuid() == 0 else "the local testbed needs root (network and mount namespaces)"
if _why_not is None:
    _why_not = LocalTestbed().preflight()


def pytest_collection_modifyitems(config, items):
    if _why_not:
        skip = pytest.mark.skip(reason=_why_not)
        for item in items:
            if "tests/remote/" in str(item.fspath):
                item.add_marker(skip)


def three_hosts(name: str = "remote-test") -> ReservationSpec:
    return ReservationSpec(name=name, machines=[MachineGroup(["server"], 1), MachineGroup(["client"], 2)])


@dataclass
class Bed:
    state: dict[str, Any] = field(repr=False)  # (both hold the private key: keep it out of reports)
    inventory: dict[str, Any] = field(repr=False)  # the Reservation's `inventory` output, revealed

    @property
    def names(self) -> list[str]:
        return [h["name"] for h in self.inventory["hosts"]]


class Reservations:
    """Reserves through LocalTestbed and releases everything under its run root at the end."""

    def __init__(self, run_root: str):
        self.run_root = run_root
        self.states: list[dict] = []

    async def progress(self, message: str) -> None:
        pass

    async def reserve(self, spec: ReservationSpec) -> Bed:
        try:
            state = await LocalTestbed(run_root=self.run_root).reserve(spec, "urn:test-remote", self.progress)
        except ReservationError as err:
            if err.state:
                self.states.append(err.state)
            raise
        self.states.append(state)
        return Bed(state, reveal(outputs_from_state(state, {})["inventory"]))

    async def release_all(self) -> None:
        testbed = LocalTestbed(run_root=self.run_root)
        for state in self.states:
            await testbed.release(state, self.progress)
        if os.path.isdir(self.run_root):  # anything else left by an interrupted reserve
            for prefix in os.listdir(self.run_root):
                await testbed.release(
                    {
                        "backend": "local",
                        "id": prefix.rstrip("-"),
                        "hosts": [],
                        "networks": [],
                        "local": {
                            "prefix": prefix,
                            "runDir": os.path.join(self.run_root, prefix),
                            "switchNamespace": switch_namespace(prefix),
                            "hosts": {},
                        },
                    },
                    self.progress,
                )


def masters_running(under: str | None = None) -> list[str]:
    """Command lines of the ControlMasters (`ssh: <control path> [mux]`) under `under`, by
    default anywhere under this process's remote-layer directory."""
    under = under or materialize._root
    if not under:
        return []
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if under in line and "[mux]" in line:
            found.append(line)
    return found


async def _teardown(reservations: Reservations) -> None:
    try:
        await materialize.close()  # stop every ControlMaster we opened, remove the workspaces
    finally:
        await asyncio.wait_for(reservations.release_all(), 60)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bed(tmp_path_factory):
    """server-1 (role server), client-1 and client-2 (role client), shared by a test module."""
    reservations = Reservations(str(tmp_path_factory.mktemp("remote-run")))
    try:
        yield await reservations.reserve(three_hosts())
    finally:
        await _teardown(reservations)


@pytest_asyncio.fixture(loop_scope="module")
async def own_bed(tmp_path):
    """A fresh 3-host reservation for a test that breaks hosts."""
    reservations = Reservations(str(tmp_path / "run"))
    try:
        yield await reservations.reserve(three_hosts("remote-own"))
    finally:
        await _teardown(reservations)
