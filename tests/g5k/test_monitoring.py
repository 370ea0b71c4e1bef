"""Monitoring on a g5k stack: tests/e2e/projects/monitoring, unchanged, under the real engine
against the emulator, whose nodes are real hosts with sshd (issue 12 §4).

The same checks as on the local testbed (tests/e2e/test_monitoring.py), with what the g5k
backend decides read from the stack: host names (Grid'5000 node names), the agents' addresses
(the nodes' production addresses, the ones SSH uses) and the experiment interfaces (the nodes'
secondary NICs moved into the KaVLAN), as the Reservation's `hosts` output says.
"""

from __future__ import annotations

import os

import pytest

from ..e2e.stack import Stack
from ..e2e.test_monitoring import check_backup, check_deployed, check_destroy, check_measurement
from .conftest import CLOCK_SPEED, DEPLOY_SECONDS, EmulatorProcess
from .test_e2e import _jobs


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_monitoring_program_runs_unchanged_on_the_g5k_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts"):
            pytest.skip("this emulator build has no real hosts")
        stack = Stack(
            tmp_path,
            example="monitoring",
            stack="g5k",
            config={
                "testbed:backend": "g5k",
                "testbed:g5kConfigFile": emu.config_file,
                "testbed:g5kSite": "lyon",
                "testbed:g5kSshProxyCommand": info["proxyCommand"],
            },
        )
        stack.env["PULUMI_TESTBED_CACHE"] = str(tmp_path / "c")  # the CLI's keys: private to the test
        try:
            stack.up()
            check_deployed(stack, "g5k")
            assert stack.preview_ops() == {}, "a second preview shows no change"
            check_measurement(stack)
            assert stack.preview_ops() == {}
            check_backup(stack, "g5k")
            check_destroy(stack)
        finally:
            stack.destroy()
        assert all(j["state"] in ("error", "terminated") for j in _jobs(emu))
