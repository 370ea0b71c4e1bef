"""The chameleon backend's reserve and release against the OpenStack emulator, without real
hosts: lease, keypair, servers on the reservation and floating IPs are made through the real
clients and recorded; when SSH cannot succeed the partial state holds every one of them, and
releasing it leaves nothing on the cloud. A lease Blazar refuses says why and leaves nothing."""

from __future__ import annotations

import asyncio

import pytest

from testbed_provider.testbeds.base import ReservationError
from testbed_provider.testbeds.chameleon import testbed as chameleon

from .test_backend_checks import backend, spec
from .test_identity_and_images import emu  # noqa: F401 - the fixture
from .test_leases import at, blazar, hosts

pytestmark = pytest.mark.fast


async def quiet(line: str) -> None:
    lines.append(line)


lines: list[str] = []


def leftovers(emu):  # noqa: F811
    cloud = emu.cloud
    return {kind: len(cloud.all(kind)) for kind in ("lease", "server", "port", "fip", "keypair")}


def test_everything_made_is_recorded_and_released(emu, monkeypatch):  # noqa: F811
    emu.config.boot_seconds = 0
    emu.config.lease_start_seconds = 0
    monkeypatch.setattr(chameleon, "POLL", 0.05)
    monkeypatch.setattr(chameleon, "READY_TIMEOUT", 1.0)
    tb = backend(emu, chameleonSshProxyCommand="false")  # no host answers: SSH fails here, and no packet leaves
    with pytest.raises(ReservationError) as failed:
        asyncio.run(
            tb.reserve(spec((["server"], 1, {}), (["client"], 2, {"nodeType": "compute_cascadelake_r"})), "urn:pulumi:s::p::t::exp", quiet)
        )
    state = failed.value.state
    assert state is not None and "did not answer SSH" in str(failed.value)
    record = state["chameleon"]
    assert [s["name"] for s in sorted(record["servers"], key=lambda s: s["name"])] == ["client-1", "client-2", "server-1"]
    assert len(record["floatingIps"]) == 3 and record["keypair"] and record["lease"]["name"].startswith("exp-")
    servers = emu.cloud.all("server").values()
    assert all(s["host"] and not s["error"] and s["metadata"]["pulumi-testbed"] == record["owner"] for s in servers)
    assert {emu.cloud.hosts[s["host"]]["node_type"] for s in servers} == {"compute_skylake", "compute_cascadelake_r"}
    assert leftovers(emu) == {"lease": 1, "server": 3, "port": 3, "fip": 3, "keypair": 1}
    assert any("lease" in line and "ACTIVE" in line for line in lines)
    asyncio.run(tb.release(state, quiet))
    assert leftovers(emu) == {"lease": 0, "server": 0, "port": 0, "fip": 0, "keypair": 0}


def test_a_refused_lease_says_why_and_leaves_nothing(emu, monkeypatch):  # noqa: F811
    monkeypatch.setattr(chameleon, "POLL", 0.05)
    blazar(emu).lease.create("other", "now", at(emu, 240), hosts(4), [])
    tb = backend(emu, chameleonSshProxyCommand="false")
    with pytest.raises(ReservationError) as refused:
        asyncio.run(tb.reserve(spec((["server"], 1, {})), "urn:pulumi:s::p::t::exp", quiet))
    assert "Blazar refused lease" in str(refused.value) and "Not enough hosts available" in str(refused.value)
    assert refused.value.state is None
    assert leftovers(emu) == {"lease": 1, "server": 0, "port": 0, "fip": 0, "keypair": 0}  # the other lease only
