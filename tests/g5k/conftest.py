"""g5k provider tests: the real plugin process over gRPC against the real emulator process,
which the real python-grid5000 client inside the plugin talks to."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import pytest
from pulumi.runtime.proto import provider_pb2

from testbed_provider.protocol import codec

from ..helpers import failures_of
from ..plugin.engine import PluginUnderTest

g5k_emulator = pytest.importorskip("g5k_emulator.testing")
EmulatorProcess = g5k_emulator.EmulatorProcess

FAST_POLL = {"PULUMI_TESTBED_G5K_MAX_POLL": "0.3"}


class G5kPlugin(PluginUnderTest):
    """The plugin configured for the g5k backend, with helpers per resource token."""

    def configure_g5k(self, emu: Any, **extra: Any) -> None:
        self.handshake_and_configure({"backend": "g5k", "g5kConfigFile": emu.config_file, **extra})

    def urn(self, token: str, name: str) -> str:
        return f"urn:pulumi:test::proj::{token}::{name}"

    def check_res(self, token: str, name: str, news: dict[str, Any], olds: Optional[dict[str, Any]] = None):
        """The CheckResponse, with its failures read back as (property, reason) (see Failure)."""
        response = self.stub.Check(
            provider_pb2.CheckRequest(
                urn=self.urn(token, name), type=token, name=name, olds=codec.encode(olds or {}), news=codec.encode(news)
            )
        )
        return SimpleNamespace(inputs=response.inputs, failures=failures_of(response))

    def create(self, token: str, name: str, inputs, preview: bool = False, timeout: float = 120):
        props = inputs if not isinstance(inputs, dict) else codec.encode(inputs)
        return self.stub.Create(
            provider_pb2.CreateRequest(urn=self.urn(token, name), type=token, properties=props, preview=preview, timeout=timeout)
        )

    def read(self, token: str, name: str, rid: str, properties=None, inputs=None):
        return self.stub.Read(
            provider_pb2.ReadRequest(
                id=rid, urn=self.urn(token, name), type=token, properties=properties or codec.encode({}), inputs=inputs or codec.encode({})
            )
        )

    def delete(self, token: str, name: str, rid: str, properties, timeout: float = 120):
        return self.stub.Delete(
            provider_pb2.DeleteRequest(id=rid, urn=self.urn(token, name), type=token, properties=properties, timeout=timeout)
        )


# The shared emulator's clock: 6x, so an hour of walltime (the default) lasts 10 min of real time,
# longer than any test may run (pytest's --timeout=600): no job ends under a test however slow the
# machine (at 60x a blocker's hour was one minute). What the emulator makes a test wait for
# (launching, finishing: 5 s; a deployment: 6 s) still takes about a second.
CLOCK_SPEED = 6
DEPLOY_SECONDS = 6


@pytest.fixture
def emulator(tmp_path):
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=False, deploy_seconds=DEPLOY_SECONDS) as emu:
        yield emu


@pytest.fixture
def plugin():
    p = G5kPlugin(env=FAST_POLL)
    yield p
    p.stop()


def job_state(emu: Any, site: str, uid: int) -> str:
    from g5k_emulator.testing import grid5000_client

    return grid5000_client(emu).sites[site].jobs[uid].state
