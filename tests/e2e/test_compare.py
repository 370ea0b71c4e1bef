"""One program, four testbeds: examples/iperf3 unchanged on the stacks `local` (namespace hosts),
`local-vm` (QEMU VMs), `g5k` (the emulator, real hosts behind it) and `static` (namespace hosts
another project brought up, as machines that already exist), chosen by `pulumi stack select` alone; then
`testbed compare` puts them in one table, outputs of the same shape on every row."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ..g5k.conftest import CLOCK_SPEED, DEPLOY_SECONDS, EmulatorProcess
from .stack import Stack
from .test_static import TESTBED, existing_machines, static_config
from .test_vms import pytestmark  # noqa: F401  (root, QEMU and mmdebstrap: the local-vm stack)


def test_iperf3_on_four_testbeds_in_one_table(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")
    if shutil.which("dnsmasq") is None:
        pytest.skip("the emulator's hosts need dnsmasq")
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        proxy = emu.control("GET", "ssh")["proxyCommand"]
        existing = Stack(tmp_path, example="existing")
        project = Stack(tmp_path, example="iperf3", stack="local", config={"duration": "1"})
        made: list[str] = []

        def on(stack: str, config: dict[str, str]) -> None:
            if stack != "local":
                project.run("stack", "init", stack)
            for key, value in config.items():
                project.run("config", "set", key, value)
            made.append(stack)
            project.up()

        try:
            machines, key = existing_machines(existing, tmp_path)
            on("local", {})
            on("local-vm", {"duration": "1"})
            g5k = {"testbed:g5kConfigFile": emu.config_file, "testbed:g5kSite": "lyon", "testbed:g5kSshProxyCommand": proxy}
            on("g5k", {**g5k, "duration": "1"})
            on("static", static_config(machines, key))
            table = subprocess.run(
                [
                    str(TESTBED),
                    "compare",
                    "--stacks",
                    ",".join(made),
                    "--output",
                    "bandwidth_gbps",
                    "--output",
                    "roles",
                    "--format",
                    "json",
                ],
                cwd=project.dir,
                env=project.env,
                capture_output=True,
                text=True,
                check=True,
            )
            rows = {r["stack"]: r for r in json.loads(table.stdout)}
            assert {s: r["backend"] for s, r in rows.items()} == {"local": "local", "local-vm": "local", "g5k": "g5k", "static": "static"}
            for row in rows.values():
                assert row["hosts"] == 2 and row["ready_s"] > 0 and row["bandwidth_gbps"] > 0, row
                assert sorted(row["roles"]) == ["client", "server"] and all(len(v) == 1 for v in row["roles"].values()), row
            text = subprocess.run([str(TESTBED), "compare"], cwd=project.dir, env=project.env, capture_output=True, text=True, check=True)
            print(text.stdout)
        finally:
            for stack in reversed(made):
                project.run("destroy", "--yes", "--skip-preview", "--stack", stack, check=False)
            existing.destroy()
