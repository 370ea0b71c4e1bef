"""Monitoring end to end: the real engine, real hosts, real node-exporter and Prometheus.

iperf3 with monitoring on the local testbed (tests/e2e/projects/monitoring): the collector's data
shows iperf3's traffic on the experiment interfaces within 20 % of iperf3's own figure, scrapes
run on the management network; a second `pulumi up` changes nothing; a host added gets its agent
and the collector reloads (same process); a MetricsBackup brings the TSDB home with checksums;
destroy leaves no process. Bad input fails naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import time
from typing import Any

import pytest

from ..helpers import IS_ROOT, ROOT
from .stack import Stack

TESTBED = ROOT / ".venv" / "bin" / "testbed"

QUERY = (
    "import json,sys,urllib.parse,urllib.request; "
    "print(urllib.request.urlopen('http://127.0.0.1:9090/api/v1/query?'"
    "+urllib.parse.urlencode({'query': sys.argv[1], 'time': sys.argv[2]}), timeout=30).read().decode())"
)


@pytest.fixture
def mon(tmp_path):
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    s = Stack(tmp_path, example="monitoring", config={"testbed:backend": "local"})
    s.env["PULUMI_TESTBED_CACHE"] = str(tmp_path / "c")  # the CLI's keys: private to the test
    yield s
    s.destroy()


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TESTBED), *args], cwd=stack.dir, env=stack.env, capture_output=True, text=True, timeout=120)


def on_host(stack: Stack, pattern: str, command: str) -> dict[str, str]:
    """Host → stdout of `command` run there (through the CLI, from stack state)."""
    proc = cli(stack, "run", "--json", pattern, "--", command)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return {r["host"]: r["stdout"] for r in json.loads(proc.stdout)}


def promql(stack: Stack, expr: str, at: float) -> list[dict[str, Any]]:
    out = on_host(stack, "server", f"python3 -c {shlex.quote(QUERY)} {shlex.quote(expr)} {at}")
    return json.loads(next(iter(out.values())))["data"]["result"]


def pids(stack: Stack) -> dict[str, int]:
    """`host/tag` → pid of every monitoring background process (from the remote pidfiles)."""
    out = on_host(
        stack, "all", 'for f in "$HOME"/.testbed/bg/mon-*.pid; do [ -f "$f" ] && echo "$(basename "$f" .pid) $(cat "$f")"; done; true'
    )
    found = {}
    for host, text in out.items():
        for line in text.splitlines():
            tag, pid = line.split()
            found[f"{host}/{tag.rsplit('-', 1)[-1]}"] = int(pid)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def hosts_of(stack: Stack) -> dict[str, Any]:
    """The stack's Reservation `hosts` output: host → its entry (name, address, roles, networks)."""
    return {h["name"]: h for h in stack.reservation()["outputs"]["hosts"]}


def role(stack: Stack, name: str) -> list[str]:
    return sorted(h for h, entry in hosts_of(stack).items() if name in entry["roles"])


def experiment_interface(stack: Stack, host: str) -> str:
    """The host's interface on the `experiment` network, as its inventory says (eth1 locally)."""
    return next(n["interface"] for n in hosts_of(stack)[host]["networks"] if n["id"] == "experiment")


def check_deployed(stack: Stack, stack_name: str) -> dict[str, int]:
    """After the first `pulumi up`: every target up, agents scraped on the hosts' SSH addresses,
    the outputs; the monitoring processes by `host/tag` (see pids)."""
    out = stack.outputs()["monitoring"]
    addresses = stack.outputs()["addresses"]
    [server], clients = role(stack, "server"), role(stack, "client")
    nodes = {t["host"]: t for t in out["targets"] if t["job"] == "node"}
    assert sorted(nodes) == sorted([server, *clients]) and all(t["health"] == "up" for t in out["targets"]), out["targets"]
    # Scraped over the management network: each agent's endpoint is the host's SSH address.
    for host, t in nodes.items():
        assert t["endpoint"] == f"{addresses[host]['_ssh']}:9100", t
    assert out["tunnel"] == f"testbed tunnel --stack {stack_name} {server}:9090 9090"
    assert set(out["queries"]) >= {"throughput", "receive", "transmit", "cpu", "memory"}
    assert out["prometheus"]["host"] == server and out["prometheus"]["port"] == 9090
    running = pids(stack)
    assert set(running) == {f"{h}/agent" for h in nodes} | {f"{server}/collector"}, running
    return running


def check_measurement(stack: Stack) -> None:
    """A measurement (config `run`, `duration`): the collector saw iperf3's traffic on the
    experiment interfaces, and the scrapes stayed off them."""
    stack.run("config", "set", "run", "r1")
    stack.run("config", "set", "duration", "8")
    stack.up()
    [server], [client] = role(stack, "server"), role(stack, "client")
    report = json.loads(stack.outputs()["bench"][0]["stdout"])
    start = report["start"]["timestamp"]["timesecs"]
    seconds = report["end"]["sum_received"]["seconds"]
    iperf = report["end"]["sum_received"]["bits_per_second"]
    # The counters' samples just before and just after the transfer: the bytes it moved, as the
    # collector recorded them (headers included: a few % above iperf3's payload).
    before_t, after_t = start - 1, start + seconds + 3

    def counter(direction: str, host: str, t: float) -> float:
        device = experiment_interface(stack, host)
        series = promql(stack, f'node_network_{direction}_bytes_total{{host="{host}",device="{device}"}}', t)
        assert series, f"no {direction} series of {host}'s experiment interface {device} in the collector"
        return float(series[0]["value"][1])

    for direction, host in (("receive", server), ("transmit", client)):
        seen = (counter(direction, host, after_t) - counter(direction, host, before_t)) * 8 / seconds
        assert abs(seen - iperf) <= 0.2 * iperf, (direction, host, seen, iperf)
    window = 5
    # ... and the scrapes did not: the client's experiment interface is quiet around the measurement
    # (below 1 % of its rate), while its other interfaces (the management one) carry the scrapes.
    device = experiment_interface(stack, client)
    quiet = promql(stack, f'increase(node_network_transmit_bytes_total{{host="{client}",device="{device}"}}[{window}s])', start - 1)
    others = f'host="{client}",device!~"lo|{device}"'
    scrapes = promql(stack, f"sum(increase(node_network_transmit_bytes_total{{{others}}}[{window}s]))", start - 1)
    if quiet and scrapes:  # the stack may be younger than the window before the measurement
        assert float(quiet[0]["value"][1]) * 8 < 0.01 * iperf * window
        assert float(scrapes[0]["value"][1]) > 0


def check_backup(stack: Stack, stack_name: str) -> None:
    """A MetricsBackup (config `backup`): the snapshot fetched under backups/<stack>/metrics/,
    checksums match, the manifest covers the measurement, nothing left on the collector."""
    [server] = role(stack, "server")
    data_dir = stack.outputs()["monitoring"]["prometheus"]["data_dir"]
    stack.run("config", "set", "backup", "b1")
    stack.up()
    backup = stack.outputs()["backup"]
    directory = stack.dir / backup["directory"]
    assert directory.parent == stack.dir / "backups" / stack_name / "metrics" and directory.name == backup["snapshot"]
    assert backup["files"] and backup["bytes"] > 0
    for f in backup["files"]:
        assert hashlib.sha256((directory / f["path"]).read_bytes()).hexdigest() == f["sha256"], f["path"]
    manifest = json.loads((directory / "backup.json").read_text())
    assert manifest["stack"] == stack_name and manifest["collector"] == server and manifest["snapshot"] == backup["snapshot"]
    assert backup["from"] and backup["to"] and backup["from"] < backup["to"]
    assert not on_host(stack, "server", f"ls {data_dir}/snapshots 2>/dev/null; true")[server].strip()


def check_destroy(stack: Stack) -> None:
    """Destroy: nothing it started is left."""
    everything = pids(stack)
    assert everything
    stack.destroy()
    assert stack.resources() == []
    assert not [k for k, pid in everything.items() if alive(pid)]


def test_monitoring_lifecycle(mon):
    mon.up()
    running = check_deployed(mon, "local")
    board = json.loads(mon.resource("monitoring")["outputs"]["grafanaDashboard"])  # for a Grafana elsewhere
    assert board["title"] == "local monitoring" and len(board["panels"]) == 4

    # A second `pulumi up` changes nothing.
    assert mon.preview_ops() == {}

    check_measurement(mon)

    # A host added: its agent starts, the collector reloads (same process), the others stay.
    mon.run("config", "set", "clients", "2")
    proc = mon.up()
    assert "reloaded its configuration" in proc.stdout, proc.stdout
    after = pids(mon)
    assert after["server-1/collector"] == running["server-1/collector"]
    assert after["client-1/agent"] == running["client-1/agent"]
    assert "client-2/agent" in after
    targets = {t["host"]: t["health"] for t in mon.outputs()["monitoring"]["targets"] if t["job"] == "node"}
    assert targets == {"client-1": "up", "client-2": "up", "server-1": "up"}

    check_backup(mon, "local")
    check_destroy(mon)


def first_preview_failure(stack: Stack) -> str:
    proc = stack.run("preview", check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


def test_bad_patterns_fail_the_first_preview(mon):
    mon.run("config", "set", "clients", "2")
    mon.run("config", "set", "collector", "client")
    assert "collector: must match exactly one host, `client` matches 2" in first_preview_failure(mon)
    mon.run("config", "set", "collector", "nosuch")
    assert "collector: unknown role or host `nosuch`" in first_preview_failure(mon)


def test_runtime_failures_name_the_problem(mon):
    def failing_up() -> str:
        proc = mon.run("up", "--yes", "--skip-preview", check=False)
        assert proc.returncode != 0, proc.stdout
        return proc.stdout

    # Preview installs and starts nothing.
    mon.run("config", "set", "monitor", "false")
    mon.up()
    mon.run("config", "set", "monitor", "true")
    assert mon.preview_ops().get("monitoring") == "create"
    assert pids(mon) == {}

    # An unknown network: a Check failure once the inventory is known.
    mon.run("config", "set", "network", "nosuch")
    assert "network: unknown network `nosuch` (the reservation's networks: experiment, _ssh)" in failing_up()
    mon.run("config", "rm", "network")

    # Prometheus refusing its configuration: its own words in the error (the agents it started
    # are recorded: the next up converges from them).
    mon.run("config", "set", "extra", "198.19.0.250:9999")
    mon.run("config", "set", "labels", '{"0bad": "x"}')
    out = failing_up()
    assert "starting Prometheus failed on 1 of 1 host(s): server-1" in out and "is not a valid label name" in out, out

    # An unreachable target is named with the collector's own error.
    mon.run("config", "rm", "labels")
    mon.run("config", "set", "readyTimeout", "20")  # Prometheus applies new targets every 5 s
    out = failing_up()
    assert "1 target(s) not scraped after 20 s: 198.19.0.250:9999 (app, 198.19.0.250:9999)" in out, out
    mon.run("config", "rm", "extra")
    mon.up()  # the recorded partial deployment converges
    assert all(t["health"] == "up" for t in mon.outputs()["monitoring"]["targets"])

    # The collector's port already taken (a replacement on another port): named, with the port.
    mon.run("config", "set", "blockPort", "9095")
    mon.run("config", "set", "port", "9095")
    out = failing_up()
    assert "starting Prometheus failed on 1 of 1 host(s): server-1" in out and "TCP port 9095 is already in use" in out, out


def test_unreachable_agent_is_named(mon):
    mon.run("config", "set", "clients", "2")
    mon.run("config", "set", "monitor", "false")
    mon.up()
    # client-2's sshd goes away (stopped through its own pid file): installing names the host.
    cli(mon, "run", "client-2", "--", 'kill "$(cat /run/sshd.pid)"')
    mon.run("config", "set", "monitor", "true")
    proc = mon.run("up", "--yes", "--skip-preview", check=False)
    assert proc.returncode != 0 and "installing failed on 1 of 3 host(s): client-2 (unreachable)" in proc.stdout, proc.stdout


def test_refresh_sees_a_dead_agent_and_up_restarts_it_and_the_ui_can_be_elsewhere(mon):
    mon.run("config", "set", "ui", "client")  # the UI served from the client, forwarded to the collector
    mon.up()
    out = mon.outputs()["monitoring"]
    assert out["tunnel"] == "testbed tunnel --stack local client-1:9090 9090"
    up = on_host(mon, "client", f"python3 -c {shlex.quote(QUERY)} up $(date +%s)")["client-1"]
    assert {r["metric"]["host"] for r in json.loads(up)["data"]["result"]} == {"server-1", "client-1"}  # the collector's answer
    before = pids(mon)
    assert set(before) == {"server-1/agent", "client-1/agent", "server-1/collector", "client-1/ui"}

    on_host(mon, "client", 'kill "$(cat "$HOME"/.testbed/bg/mon-*-agent.pid)"')  # the agent dies outside Pulumi
    deadline = time.monotonic() + 60
    while not [r for r in promql(mon, 'up{job="node",host="client-1"} == 0', time.time())]:  # until a scrape failed
        assert time.monotonic() < deadline, "the collector never saw client-1's agent down"
        time.sleep(0.5)  # the polling period of the condition
    mon.run("refresh", "--yes")
    state = mon.resource("monitoring")["outputs"]  # refresh updates the resource's state (stack outputs change at up)
    seen = {t["host"]: t["health"] for t in state["targets"] if t["job"] == "node"}
    assert seen == {"server-1": "up", "client-1": "down"}, seen
    proc = mon.up()
    assert "restarted the agent on client-1" in proc.stdout, proc.stdout
    after = pids(mon)
    assert after["client-1/agent"] != before["client-1/agent"] and after["server-1/collector"] == before["server-1/collector"]
    assert all(t["health"] == "up" for t in mon.outputs()["monitoring"]["targets"])
