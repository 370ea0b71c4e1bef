"""The chameleon backend end to end against the OpenStack emulator with real hosts (root): a
reservation whose servers answer SSH through the emulator's switch at their floating IPs with
the reservation's key, host keys pinned, experiment networks on the shared network with the
interface read on the host; refresh sees a deleted server as lost; release leaves no namespace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from typing import Iterator

import pytest

from openstack_emulator.app import Emulator
from testbed_provider.hosts import netns
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec
from testbed_provider.testbeds.chameleon import testbed as chameleon

from .test_backend_checks import backend
from .test_identity_and_images import serve

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="real hosts need root")


@pytest.fixture
def emu(tmp_path) -> Iterator[Emulator]:
    emulator = Emulator(hosts=True, run_dir=str(tmp_path / "run"))
    emulator.config.boot_seconds = 0
    emulator.config.lease_start_seconds = 0
    yield from serve(emulator)


async def quiet(line: str) -> None:
    return None


def test_servers_are_real_hosts_reached_with_the_reservations_key(emu, monkeypatch, tmp_path):
    monkeypatch.setattr(chameleon, "POLL", 0.2)
    assert emu.hosts is not None
    tb = backend(emu, chameleonSshProxyCommand=emu.hosts.proxy_command, chameleonSshUser="root")
    spec = ReservationSpec(
        "exp", [MachineGroup(roles=["server"], count=1), MachineGroup(roles=["client"], count=1)], [NetworkSpec("exp", None, None)]
    )
    state = asyncio.run(tb.reserve(spec, "urn:pulumi:s::p::t::exp", quiet))
    try:
        [server, client] = state["hosts"]
        assert server["address"].startswith("203.0.113.") and server["networks"][0]["address"].startswith("10.140.")
        assert server["networks"][0]["interface"] == "eth0" and server["networks"][0]["cidr"] == "10.140.80.0/22"
        key, known = tmp_path / "id", tmp_path / "known"
        key.write_text(state["ssh"]["privateKey"])
        key.chmod(0o600)
        known.write_text(state["ssh"]["knownHosts"])
        ssh = ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
        ssh += ["-o", f"ProxyCommand={emu.hosts.proxy_command}", f"root@{server['address']}"]
        out = subprocess.run(
            [*ssh, "hostname; ping -c1 -W5 " + client["networks"][0]["address"]], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and out.stdout.splitlines()[0] == "server-1", out.stderr
        emu_server = next(s for s in emu.cloud.all("server").values() if s["name"] == "client-1")
        seen = asyncio.run(tb.inspect(state))
        assert seen is not None and [h["name"] for h in seen["hosts"]] == ["server-1", "client-1"]
        from .test_identity_and_images import connect

        connect(emu).compute.delete_server(emu_server["id"])
        seen = asyncio.run(tb.inspect(state))
        assert seen is not None and [h["name"] for h in seen["hosts"]] == ["server-1"]
    finally:
        asyncio.run(tb.release(state, quiet))
    assert {k: len(emu.cloud.all(k)) for k in ("lease", "server", "fip", "keypair")} == {"lease": 0, "server": 0, "fip": 0, "keypair": 0}
    deadline = time.monotonic() + 60  # the emulator tears hosts down after answering the DELETE
    while netns.list_namespaces(emu.hosts.prefix) != [emu.hosts.switch] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert netns.list_namespaces(emu.hosts.prefix) == [emu.hosts.switch]  # the switch goes with the emulator
