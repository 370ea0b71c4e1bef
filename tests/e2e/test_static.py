"""The static backend: examples/iperf3 unchanged on machines that already exist.

The machines are namespace hosts another stack (the local backend) brought up; to the stack
under test they are just addresses, a key and a ProxyCommand in `testbed:static*`. Its preview
warns that host keys will be trusted on first use; up pins them (the very keys the hosts' own
stack pinned) and runs the experiment; a host that stops answering is lost at refresh; destroy
leaves the hosts running. Given `staticKnownHosts`, a wrong key is refused, naming the host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from ..helpers import ROOT
from .stack import Stack

TESTBED = ROOT / ".venv" / "bin" / "testbed"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the existing machines are local namespace hosts (root)")


def pick(d: dict, camel: str, snake: str):
    return d[camel] if camel in d else d[snake]


def static_config(out: dict, key_file: str) -> dict[str, str]:
    """`testbed:static*` naming the other stack's hosts (by role, with their experiment addresses)."""
    hosts: dict[str, list] = {}
    for h in out["hosts"]:
        nets = [{"id": n["id"], "address": n["address"], "interface": n.get("interface", "")} for n in h["networks"]]
        hosts.setdefault(h["roles"][0], []).append({"address": h["address"], "user": out["ssh"]["user"], "networks": nets})
    return {
        "testbed:staticHosts": json.dumps(hosts),
        "testbed:staticSshKeyFile": key_file,
        "testbed:staticSshProxyCommand": pick(out["ssh"], "proxyCommand", "proxy_command"),
        "duration": "1",
    }


def existing_machines(existing: Stack, tmp_path) -> tuple[dict, str]:
    """Up the `existing` project's hosts; its outputs and its private key, written to a file."""
    existing.up()
    mine = existing.outputs(secrets=True)
    key = tmp_path / "id"
    key.write_text(mine["key"])
    key.chmod(0o600)
    return mine, str(key)


def test_iperf3_on_existing_machines(tmp_path):
    existing = Stack(tmp_path, example="existing")
    try:
        mine, key = existing_machines(existing, tmp_path)
        config = static_config(mine, key)
        own_known = pick(mine["ssh"], "knownHosts", "known_hosts")
        assert all(h["networks"] for hs in json.loads(config["testbed:staticHosts"]).values() for h in hs), config
        static = Stack(tmp_path, example="iperf3", stack="static", config=config)
        try:
            preview = static.run("preview")
            assert "will be trusted on first use and pinned" in preview.stdout + preview.stderr
            static.up()
            out = static.outputs()
            assert out["bandwidth_gbps"] > 0 and sorted(out["roles"]) == ["client", "server"]
            state = static.reservation()["outputs"]
            assert [h["name"] for h in state["hosts"]] == ["server-1", "client-1"]
            own_keys = {line.split()[0].split(",")[1]: line.split(None, 1)[1] for line in own_known.splitlines()}
            pinned = {line.split()[0].split(",")[1]: line.split(None, 1)[1] for line in state["ssh"]["knownHosts"].splitlines()}
            assert pinned == own_keys, "the keys pinned are the hosts' own"
            assert static.preview_ops() == {}, "a second up is a no-op"
            assert mine["key"] not in static.state_text(), "the key is a secret in state"

            # the same program on the local testbed, as a second stack of the project: one table
            static.run("stack", "init", "local")
            static.run("config", "set", "duration", "1")
            static.up()
            static.run("stack", "select", "static")
            table = subprocess.run(
                [str(TESTBED), "compare", "--stacks", "local,static", "--output", "bandwidth_gbps", "--format", "json", "--plot", "c.png"],
                cwd=static.dir,
                env=static.env,
                capture_output=True,
                text=True,
                check=True,
            )
            rows = {r["stack"]: r for r in json.loads(table.stdout)}
            assert {s: (r["backend"], r["hosts"]) for s, r in rows.items()} == {"local": ("local", 2), "static": ("static", 2)}
            assert all(r["ready_s"] > 0 and r["bandwidth_gbps"] > 0 for r in rows.values()), rows
            assert (static.dir / "c.png").read_bytes()[:4] == b"\x89PNG"
            text = subprocess.run([str(TESTBED), "compare"], cwd=static.dir, env=static.env, capture_output=True, text=True, check=True)
            assert text.stdout.split("\n")[0].split()[:4] == ["stack", "backend", "hosts", "ready_s"] and "static" in text.stdout
            print(text.stdout)

            # client-1 stops answering SSH (its sshd killed outside both stacks): lost at refresh
            local = existing.reservation()["outputs"]["testbedState"]["local"]
            os.kill(local["hosts"]["client-1"]["sshdPid"], signal.SIGKILL)
            static.run("refresh", "--yes")
            assert [h["name"] for h in static.reservation()["outputs"]["hosts"]] == ["server-1"]
            existing.run("refresh", "--yes")
            existing.up()  # its own stack brings client-1's sshd back (with a new host key)
            own_known = pick(existing.outputs()["ssh"], "knownHosts", "known_hosts")
        finally:
            static.run("destroy", "--yes", "--skip-preview", "--stack", "local", check=False)
            static.run("stack", "select", "static", check=False)
            static.destroy()
        assert static.resources() == []
        # the machines are left as they were: their own stack still finds both alive
        existing.run("refresh", "--yes")
        assert len(existing.reservation()["outputs"]["hosts"]) == 2

        # known keys given and one wrong: refused, naming the host, before anything runs
        wrong = {**config, "testbed:staticKnownHosts": _swap_first_key(own_known, tmp_path)}
        (tmp_path / "checked").mkdir()
        checked = Stack(tmp_path / "checked", example="iperf3", stack="static", config=wrong)
        failed = checked.run("up", "--yes", "--skip-preview", check=False)
        assert failed.returncode != 0 and "server-1" in failed.stdout and "checked against `staticKnownHosts`" in failed.stdout, (
            failed.stdout
        )
        assert [r for r in checked.resources() if r["type"] == "testbed:index:Reservation"] == []
        checked.destroy()
    finally:
        existing.destroy()


def _swap_first_key(known: str, tmp_path) -> str:
    """`known` with the first host's key replaced by a fresh one."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    lines = known.splitlines()
    lines[0] = lines[0].split()[0] + " " + other
    return "\n".join(lines) + "\n"


def test_a_program_naming_its_own_existing_hosts(tmp_path):
    existing = Stack(tmp_path, example="existing")
    try:
        mine, key = existing_machines(existing, tmp_path)
        given = [
            {"address": h["address"], "networks": [{"id": n["id"], "address": n["address"]} for n in h["networks"]]} for h in mine["hosts"]
        ]
        given[0]["alias"] = "first"
        config = {
            "testbed:backend": "static",
            "testbed:staticSshKeyFile": key,
            "testbed:staticSshProxyCommand": pick(mine["ssh"], "proxyCommand", "proxy_command"),
            "machines": json.dumps(given),
        }
        own = Stack(tmp_path, example="ownhosts", stack="static", config=config)
        try:
            own.up()
            out = own.outputs()
            # the hosts' own names (their hostname) behind the program's names for them
            assert {r["host"]: r["stdout"].strip() for r in out["ran"]} == {"first": "server-1", "node-1": "client-1"}
            assert sorted(out["addresses"]["experiment"]["node"]) == sorted(n["address"] for h in given for n in h["networks"])
        finally:
            own.destroy()
    finally:
        existing.destroy()
