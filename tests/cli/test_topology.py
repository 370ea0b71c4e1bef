"""`testbed topology`: the drawing and the JSON model, from real stack state.

The live 2-host local stack of conftest.py (svg parsed as XML, json, dot re-read by Debian's
`dot`, png); a Grid'5000 stack of two Reservations across two sites against the emulator (a
kavlan-global network spanning lyon and nancy, a routed kavlan on one site); and, in the fast lane,
the model builder on that stack's recorded deployment (tests/cli/data, taken from such a run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from testbed_provider.cli import topology

from ..e2e.stack import Stack
from .conftest import TESTBED

DATA = Path(__file__).parent / "data" / "g5k-sites-deployment.json"
PROJECT = Path(__file__).parent / "projects" / "g5k-sites"
SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(svg: str) -> str:
    """Every text of an SVG drawing, one per line (graphviz writes one <text> per label line)."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def check_model_matches_hosts(model: dict[str, Any], hosts: list[dict[str, Any]], reservation: str) -> None:
    """Every host of a Reservation's `hosts` output, its management link and one link per network, with addresses."""
    by_name = {h["name"]: h for h in model["hosts"] if h["reservation"] == reservation}
    assert sorted(by_name) == sorted(h["name"] for h in hosts)
    links = {(lk["host"], lk["network"]): lk for lk in model["links"]}
    networks = {n["id"]: n for n in model["networks"]}
    for h in hosts:
        mine = by_name[h["name"]]
        assert mine["address"] == h["address"] and mine["roles"] == h["roles"]
        mgmt = links[(mine["id"], f"{reservation}/_ssh")]
        assert mgmt["address"] == h["address"] and networks[mgmt["network"]]["kind"] == "management"
        for n in h["networks"]:
            link = links[(mine["id"], f"{reservation}/{n['id']}")]
            assert (link["interface"], link["address"]) == (n["interface"], n["address"])
            assert networks[link["network"]]["cidr"] == n["cidr"]
        assert sum(1 for lk in model["links"] if lk["host"] == mine["id"]) == 1 + len(h["networks"])


# ---- the live local stack ----------------------------------------------------------------------------


def test_svg_to_stdout_names_every_host_network_and_address(live):
    hosts = live.stack.outputs()["hosts"]
    proc = live.testbed("topology")  # svg on stdout by default
    assert proc.returncode == 0, proc.stderr
    texts = svg_texts(proc.stdout)
    for h in hosts:
        assert h["name"] in texts and h["address"] in texts and f"roles: {', '.join(h['roles'])}" in texts
        for n in h["networks"]:
            assert n["address"] in texts and n["interface"] in texts
    assert "experiment" in texts and "198.18.0.0/24" in texts  # the experiment network, with its CIDR
    assert "management network" in texts and "198.19.0.0/16" in texts


def test_json_model_has_every_host_and_link_with_addresses(live):
    hosts = live.stack.outputs()["hosts"]
    out = live.work / "topology.json"
    proc = live.testbed("topology", "--format", "json", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    model = json.loads(out.read_text())
    assert model["version"] == 1 and model["stack"] == "dev"
    assert [(r["name"], r["backend"]) for r in model["reservations"]] == [("nodes", "local")]
    check_model_matches_hosts(model, hosts, "nodes")
    assert {lk["interface"] for lk in model["links"] if lk["network"] == "nodes/_ssh"} == {"eth0"}
    assert model["roles"] == {"server": ["nodes/server-1"], "client": ["nodes/client-1"]}
    assert model["monitoring"] == []
    assert "PRIVATE KEY" not in out.read_text()


def test_dot_output_is_accepted_by_dot_and_png_is_a_png(live):
    dot_file = live.work / "topology.dot"
    proc = live.testbed("topology", "-f", "dot", "-o", str(dot_file))
    assert proc.returncode == 0, proc.stderr
    rendered = subprocess.run(["dot", "-Tsvg", str(dot_file)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert "server-1" in svg_texts(rendered.stdout)
    png = live.testbed("topology", "-f", "png", "-o", str(live.work / "topology.png"))
    assert png.returncode == 0, png.stderr
    assert (live.work / "topology.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_error_line(live, tmp_path):
    proc = live.testbed("topology", "--cwd", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.startswith("testbed: error: no Pulumi project in"), proc.stderr
    proc = live.testbed("topology", "--stack", "nope")
    assert proc.returncode == 2 and "no stack `nope`" in proc.stderr, proc.stderr


# ---- Grid'5000 ---------------------------------------------------------------------------------------


def check_g5k_model(model: dict[str, Any]) -> None:
    """tests/cli/projects/g5k-sites: `nodes` spans lyon and nancy on a kavlan-global vlan, `edge` is one lyon host on a routed kavlan."""
    nets = {n["id"]: n for n in model["networks"]}
    exp = nets["nodes/experiment"]
    assert exp["spansSites"] and exp["sites"] == ["lyon", "nancy"]
    assert exp["vlanType"] == "kavlan-global" and int(exp["vlan"]) >= 10 and exp["cidr"]
    lan = nets["edge/lan"]
    assert not lan["spansSites"] and lan["sites"] == ["lyon"]
    assert lan["vlanType"] == "kavlan" and 4 <= int(lan["vlan"]) <= 9
    assert nets["nodes/_ssh"]["label"] == "production network" and nets["nodes/_ssh"]["sites"] == ["lyon", "nancy"]
    assert {h["site"] for h in model["hosts"] if h["reservation"] == "nodes"} == {"lyon", "nancy"}
    assert all(h["fqdn"].startswith(h["name"] + ".") and h["fqdn"].endswith(f".{h['site']}.grid5000.fr") for h in model["hosts"])
    assert {r["name"]: r["sites"] for r in model["reservations"]} == {"nodes": ["lyon", "nancy"], "edge": ["lyon"]}


@pytest.mark.fast
def test_model_of_a_recorded_g5k_deployment_tells_the_sites_a_network_spans():
    recorded = json.loads(DATA.read_text())
    model = topology.model("g5k", recorded)
    check_g5k_model(model)
    for res in recorded["resources"]:
        name = res["urn"].rsplit("::", 1)[-1]
        check_model_matches_hosts(model, res["outputs"]["hosts"], name)
    texts = svg_texts(topology.render(model, "svg").decode())
    assert "spans sites: lyon, nancy" in texts and "kavlan-global vlan" in texts and "site: nancy" in texts


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_g5k_stack_across_two_sites_against_the_emulator(tmp_path, monkeypatch):
    from ..g5k.conftest import CLOCK_SPEED, DEPLOY_SECONDS, EmulatorProcess

    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=True, deploy_seconds=DEPLOY_SECONDS) as emu:
        info = emu.control("GET", "ssh")
        if not info.get("hosts"):
            pytest.skip("this emulator build has no real hosts")
        stack = Stack(
            tmp_path,
            example=str(PROJECT),
            stack="g5k",
            config={
                "testbed:backend": "g5k",
                "testbed:g5kConfigFile": emu.config_file,
                "testbed:g5kSshProxyCommand": info["proxyCommand"],
            },
        )
        try:
            stack.up()
            proc = subprocess.run([str(TESTBED), "topology", "-f", "json"], cwd=stack.dir, env=stack.env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            model = json.loads(proc.stdout)
            check_g5k_model(model)
            for res in (r for r in stack.resources() if r["type"] == "testbed:index:Reservation"):
                check_model_matches_hosts(model, res["outputs"]["hosts"], res["urn"].rsplit("::", 1)[-1])
            svg = subprocess.run([str(TESTBED), "topology"], cwd=stack.dir, env=stack.env, capture_output=True, text=True)
            assert svg.returncode == 0, svg.stderr
            assert "spans sites: lyon, nancy" in svg_texts(svg.stdout)
            png = tmp_path / "g5k-topology.png"
            assert subprocess.run([str(TESTBED), "topology", "-f", "png", "-o", str(png)], cwd=stack.dir, env=stack.env).returncode == 0
            artifacts = Path(__file__).parents[1] / "artifacts"
            artifacts.mkdir(exist_ok=True)
            shutil.copy(png, artifacts / "topology-g5k.png")
        finally:
            stack.destroy()
        assert stack.resources() == []
