"""The real Pulumi engine on examples/iperf3, local stack: preview, up, refresh, destroy."""

import json
import os
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..helpers import namespaces_of, netns_list
from .stack import Stack


def hostname_via(ssh: dict, key: str, host: dict) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        keyfile, known = Path(tmp, "id"), Path(tmp, "known")
        keyfile.write_text(key)
        keyfile.chmod(0o600)
        known.write_text(ssh["knownHosts"])
        argv = [
            "ssh",
            "-i",
            str(keyfile),
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ProxyCommand={ssh['proxyCommand']}",
            f"{ssh['user']}@{host['address']}",
            "hostname",
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_preview_lists_the_reservation_and_creates_nothing(stack):
    ours = lambda: {ns for ns in netns_list() if ns.startswith("tb-nodes-")}  # noqa: E731 (this example's resource)
    before = ours()
    preview = json.loads(stack.run("preview", "--json").stdout)
    steps = {s["urn"].split("::")[-1]: s for s in preview["steps"]}
    assert steps["nodes"]["op"] == "create"
    planned = steps["nodes"]["newState"]["inputs"]
    assert planned["machines"] == [{"count": 1, "roles": ["server"]}, {"count": 1, "roles": ["client"]}]
    assert ours() == before
    assert stack.resources() == []


def test_up_refresh_repair_destroy(stack):
    up = stack.up()
    assert "SSH ready" in up.stdout, up.stdout  # progress reached the CLI

    outputs = stack.outputs(secrets=True)
    assert outputs["roles"] == {"server": ["server-1"], "client": ["client-1"]}
    reservation = stack.reservation()
    ssh = reservation["outputs"]["ssh"]
    state = reservation["outputs"]
    # the private key is a secret in state: encrypted, never plaintext
    assert state["sshPrivateKey"].get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270"
    exported = json.loads(stack.run("stack", "export", "--show-secrets").stdout)
    private_key = next(r for r in exported["deployment"]["resources"] if r["type"] == "testbed:index:Reservation")["outputs"][
        "sshPrivateKey"
    ]["plaintext"]
    private_key = json.loads(private_key)
    assert "PRIVATE KEY" in private_key
    assert private_key.splitlines()[1] not in stack.state_text()
    for host in outputs["hosts"]:
        assert hostname_via(ssh, private_key, host) == host["name"]

    # idempotent: a second preview plans no change
    stack.run("preview", "--expect-no-changes")

    # a host dies outside Pulumi: refresh shows it, up repairs it
    namespace = state["testbedState"]["local"]["hosts"]["client-1"]["namespace"]
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    refresh = stack.run("refresh", "--yes")
    assert "nodes" in refresh.stdout and ("update" in refresh.stdout or "~" in refresh.stdout), refresh.stdout
    # refresh does not run the program: the resource's own state shows what is left
    assert [h["name"] for h in stack.reservation()["outputs"]["hosts"]] == ["server-1"]
    repair = stack.up()
    assert "nodes" in repair.stdout and "updated" in repair.stdout, repair.stdout
    repaired = stack.reservation()["outputs"]
    assert [h["name"] for h in repaired["hosts"]] == ["server-1", "client-1"]
    # the new host has a new host key, pinned in the updated known_hosts
    assert hostname_via(repaired["ssh"], private_key, repaired["hosts"][1]) == "client-1"

    run_dir = Path(state["testbedState"]["local"]["runDir"])
    stack.run("destroy", "--yes", "--skip-preview")
    assert namespaces_of(reservation["id"]) == set()
    assert not run_dir.exists()
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout
    assert leftover == "", f"processes of the destroyed reservation still run: {leftover}"


def test_two_stacks_up_at_once_do_not_collide(tmp_path):
    stacks = [Stack(tmp_path / name, example="nodes") for name in ("a", "b")]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.up(), stacks))
        ids = [s.reservation()["id"] for s in stacks]
        assert ids[0] != ids[1]
        for s in stacks:
            assert s.outputs()["roles"] == {"server": ["server-1"], "client": ["client-1"]}
    finally:
        for s in stacks:
            s.destroy()
