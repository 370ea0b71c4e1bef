"""examples/iperf3 unchanged on a `chameleon` stack, through the real engine, against the
OpenStack emulator with real hosts: the preview says what the lease asks and what is free, up
leases, launches, reaches the servers and runs the experiment; the credential's secret is not in
plaintext state; a second up changes nothing; destroy leaves nothing on the cloud."""

from __future__ import annotations

import os

import pytest

from openstack_emulator.testing import OpenStackEmulatorProcess

from .stack import Stack

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the emulator's servers are local namespace hosts (root)")


def test_iperf3_on_chameleon(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_TESTBED_CHAMELEON_POLL", "0.3")
    with OpenStackEmulatorProcess(tmp_path / "emu", hosts=True) as emu:
        config = emu.provider_config()
        secret = config.pop("testbed:chameleonApplicationCredentialSecret")
        stack = Stack(tmp_path, example="iperf3", stack="chameleon", config={**config, "duration": "1"})
        stack.run("config", "set", "--secret", "testbed:chameleonApplicationCredentialSecret", secret)
        try:
            preview = stack.run("preview")
            text = preview.stdout + preview.stderr
            assert "lease of 1× compute_skylake, 1× compute_skylake for 1:00:00 starting now on CHI@UC" in text, text
            stack.up()
            out = stack.outputs()
            assert out["bandwidth_gbps"] > 0 and sorted(out["roles"]) == ["client", "server"]
            state = stack.reservation()["outputs"]
            assert [h["name"] for h in state["hosts"]] == ["server-1", "client-1"]
            assert all(h["address"].startswith("203.0.113.") for h in state["hosts"])
            assert secret not in stack.state_text()
            assert stack.preview_ops() == {}, "a second up is a no-op"
        finally:
            stack.destroy()
        assert emu.control("GET", "objects") == {"lease": 0, "server": 0, "port": 0, "fip": 0, "keypair": 0}
