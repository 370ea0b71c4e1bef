"""Monitoring and MetricsBackup rules: Check failures, what re-deploys or replaces, and the
Prometheus configuration the collector gets (parsed back, and accepted by Prometheus' promtool)."""

import asyncio
import copy
import json
import shutil
import subprocess

import pytest
import yaml

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.codec import UNKNOWN
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.resources.base import PlannedHosts, ProviderContext
from testbed_provider.resources.diff import Kind
from testbed_provider.resources.metrics_backup import MetricsBackup
from testbed_provider.resources.monitoring import Monitoring, plan_of, queries
from testbed_provider.services import prometheus as prom

from .test_command_rules import INVENTORY

INV = copy.deepcopy(INVENTORY)
for h, n in zip(INV["hosts"], ("198.18.0.1", "198.18.0.2")):
    h["networks"] = [{"id": "experiment", "address": n, "interface": "eth1", "cidr": "198.18.0.0/24"}]
BASE = {"inventory": INV, "collector": "server"}


def controller(planned=None):
    ctx = ProviderContext(config=ProviderConfig(), log=EngineLog(None))
    ctx.planned.update(planned or {})
    return Monitoring(ctx)


def failures(news, planned=None):
    return {f.property: f.reason for f in asyncio.run(controller(planned).check("m", {}, news)).failures}


def test_check_rules():
    assert failures(BASE) == {}
    assert asyncio.run(controller().check("m", {}, BASE)).inputs["agents"] == "all"
    assert "required" in failures({"inventory": INV})["collector"]
    assert failures({**BASE, "collector": "all"})["collector"] == "must match exactly one host, `all` matches 2: server-1, client-1"
    assert "unknown role or host `nosuch`" in failures({**BASE, "collector": "nosuch"})["collector"]
    assert "unknown role or host `x`" in failures({**BASE, "agents": "x"})["agents"]
    assert failures({**BASE, "ui": "all"})["ui"].startswith("must match exactly one host")
    assert failures({**BASE, "network": "experiment"}) == {}
    assert failures({**BASE, "network": "nope"})["network"] == "unknown network `nope` (the reservation's networks: experiment, _ssh)"
    assert "must be at least 0.1" in failures({**BASE, "scrapeInterval": 0})["scrapeInterval"]
    assert "a Prometheus duration" in failures({**BASE, "retention": "two weeks"})["retention"]
    assert "must differ from `port`" in failures({**BASE, "agentPort": 9090})["agentPort"]
    extra = [{"job": "app", "targets": ["10.0.0.1:80"]}, {"job": "app", "targets": ["10.0.0.2:80"]}]
    assert failures({**BASE, "extraTargets": extra})["extraTargets"] == "job `app` is given twice"
    assert "taken by the agents" in failures({**BASE, "extraTargets": [{"job": "node", "targets": ["a:1"]}]})["extraTargets"]
    assert (
        "`address:port` endpoint" in failures({**BASE, "extraTargets": [{"job": "a", "targets": ["nope"]}]})["extraTargets[0].targets[0]"]
    )
    assert failures({**BASE, "inventory": UNKNOWN}) == {}  # preview: judged once known


def test_first_preview_judges_patterns_against_the_planned_hosts():
    planned = {"r": PlannedHosts((("server-1", ("server",)), ("client-1", ("client",)), ("client-2", ("client",))))}
    unknown = {**BASE, "inventory": UNKNOWN}
    assert failures(unknown, planned) == {}
    assert "matches 2 of the hosts the Reservation's inputs describe" in failures({**unknown, "collector": "client"}, planned)["collector"]
    assert "unknown role or host `servr`" in failures({**unknown, "collector": "servr"}, planned)["collector"]


def test_plan_scrapes_the_chosen_network():
    plan = plan_of({**BASE, "agents": "all"})
    assert plan.collector.host == "server-1" and plan.ui == plan.collector
    assert [(a.host, a.address) for a in plan.agents] == [("server-1", "198.19.0.1"), ("client-1", "198.19.0.2")]
    plan = plan_of({**BASE, "network": "experiment", "ui": "client"})
    assert [a.address for a in plan.agents] == ["198.18.0.1", "198.18.0.2"] and plan.ui.host == "client-1"


def deployed_outputs(agents=("server-1", "client-1")):
    plan = plan_of(BASE)
    return {
        **BASE,
        "targets": [{"host": h, "job": "node", "endpoint": "x", "health": "up"} for h in agents],
        "deployed": {
            "agents": {h: plan.identities[h] for h in agents},
            "collector": {"host": "server-1", "identity": plan.identities["server-1"], "workDir": "/root/w"},
        },
    }


def test_what_converges_in_place_and_what_replaces():
    diff = controller().diff
    outputs = deployed_outputs()
    assert diff(outputs, BASE, BASE).detailed == {}  # an unchanged program re-runs nothing
    assert diff(outputs, BASE, {**BASE, "scrapeInterval": 2}).detailed == {"scrapeInterval": Kind.UPDATE}
    result = diff(outputs, BASE, {**BASE, "port": 9091})
    assert result.replaces == ["port"] and result.delete_before_replace  # the same ports are needed again
    assert diff(outputs, BASE, {**BASE, "agents": "server"}).detailed == {"agents": Kind.UPDATE, "agentHosts": Kind.UPDATE}
    assert diff(deployed_outputs(("server-1",)), BASE, BASE).detailed == {"agentHosts": Kind.UPDATE}  # a host added
    down = {**outputs, "targets": [{**t, "health": "down"} for t in outputs["targets"]]}
    assert diff(down, BASE, BASE).detailed == {"agentHosts": Kind.UPDATE}  # refresh saw an agent down: repair
    moved = copy.deepcopy(BASE)
    moved["inventory"]["hosts"][0]["address"] = "198.19.0.9"  # a new machine behind server-1
    assert diff(outputs, BASE, moved).replaces == ["collector"]
    assert "agentHosts" in diff(outputs, BASE, {**BASE, "inventory": UNKNOWN}).detailed


def test_prometheus_configuration():
    agents = [prom.Agent("server-1", "198.19.0.1", ("server",)), prom.Agent("client-1", "fd00::2", ("client", "x"))]
    extra = [{"job": "app", "targets": ["10.0.0.1:8080"], "metricsPath": "/m", "labels": {"tier": "web"}}]
    text = prom.config_text("server-1", 9090, agents, 9100, 0.5, extra)
    config = yaml.safe_load(text)
    assert config["global"] == {"scrape_interval": "500ms", "scrape_timeout": "500ms"}
    node, itself, app = config["scrape_configs"]
    assert [c["targets"] for c in node["static_configs"]] == [["198.19.0.1:9100"], ["[fd00::2]:9100"]]
    assert node["static_configs"][1]["labels"] == {"host": "client-1", "roles": "client,x"}
    assert itself["static_configs"][0] == {"targets": ["127.0.0.1:9090"], "labels": {"host": "server-1"}}
    assert app["metrics_path"] == "/m" and app["static_configs"][0]["labels"] == {"tier": "web"}


def test_promtool_accepts_the_configuration(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus) is not installed")
    agents = [prom.Agent("server-1", "198.19.0.1")]
    (tmp_path / "prometheus.yml").write_text(prom.config_text("server-1", 9090, agents, 9100, 1.0))
    proc = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_queries_link_to_prometheus_graphs():
    qs = queries(1.0, 9090)
    assert set(qs) == {"throughput", "receive", "transmit", "cpu", "memory"}
    assert qs["receive"]["expr"] == 'sum by (host, device) (rate(node_network_receive_bytes_total{job="node",device!="lo"}[4s]) * 8)'
    assert qs["cpu"]["url"].startswith("http://127.0.0.1:9090/graph?g0.expr=100%20%2A%20%281%20-")


def test_backup_rules():
    backup = MetricsBackup(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))
    info = {"host": "server-1", "address": "198.19.0.1", "port": 9090, "url": "u", "dataDir": "/d", "scrapeInterval": 1.0}
    ok = {"inventory": INV, "prometheus": info}
    check = lambda news: {f.property: f.reason for f in asyncio.run(backup.check("b", {}, news)).failures}  # noqa: E731
    assert check(ok) == {}
    assert "no host `gone-1` in the inventory" in check({**ok, "prometheus": {**info, "host": "gone-1"}})["prometheus.host"]
    assert "required" in check({"inventory": INV})["prometheus"]
    assert backup.diff({}, ok, {**ok, "triggers": [1]}).detailed == {"triggers": Kind.ADD}
    other = copy.deepcopy(ok)
    other["inventory"]["hosts"][1]["address"] = "198.19.0.7"  # another host changed: no new snapshot
    assert backup.diff({}, ok, other).detailed == {}
    moved = copy.deepcopy(ok)
    moved["inventory"]["hosts"][0]["address"] = "198.19.0.9"
    assert backup.diff({}, ok, moved).detailed == {"hosts": Kind.UPDATE}


def test_grafana_dashboard_of_the_standard_views():
    from testbed_provider.services.grafana import dashboard_json

    board = json.loads(dashboard_json("local monitoring", 1.0))
    assert board["title"] == "local monitoring" and board["uid"] == "testbed-local-monitoring"
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "host"]
    panels = {p["title"]: p for p in board["panels"]}
    assert set(panels) == {"Received per host and interface", "Sent per host and interface", "CPU busy", "Memory used"}
    for p in panels.values():
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and p["targets"]
        for t in p["targets"]:
            assert 'host=~"$host"' in t["expr"] and ("[1s]" not in t["expr"]), t["expr"]
    assert "[$__rate_interval]" in panels["Received per host and interface"]["targets"][0]["expr"]
    assert panels["Received per host and interface"]["fieldConfig"]["defaults"]["unit"] == "bps"


def test_agents_run_the_chosen_collectors_only():
    command = prom.agent_command("198.19.0.1", 9100)
    assert command.startswith("exec prometheus-node-exporter --web.listen-address=198.19.0.1:9100 --collector.disable-defaults ")
    assert "--collector.netdev " in command and "--collector.netdev.address-info" in command and "--collector.hwmon" not in command
    assert prom.agent_command("fd00::1", 9100, ["cpu"]).endswith("--collector.disable-defaults --collector.cpu")
    assert "must list at least one collector name" in failures({**BASE, "agentCollectors": []})["agentCollectors"]
    assert "a node-exporter collector name" in failures({**BASE, "agentCollectors": ["Bad Name"]})["agentCollectors[0]"]
    outputs = deployed_outputs()
    assert controller().diff(outputs, BASE, {**BASE, "agentCollectors": ["cpu"]}).replaces == ["agentCollectors"]
