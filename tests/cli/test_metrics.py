"""`testbed metrics` and `testbed plot` on real Prometheus data, no mocks.

Backups: a real prometheus-node-exporter and a real Prometheus on 127.0.0.1 (scraping it every
second with the labels a Monitoring gives: host, job=node), a TSDB snapshot through the admin
API laid out as a MetricsBackup, then the CLI's own temporary Prometheus reads it. Live: a stack
of tests/e2e/projects/monitoring (a Monitoring and a MetricsBackup after an iperf3 run), read
through the Monitoring's outputs, through `--collector`, and from the backup it made.
Every wait is on a condition (an HTTP answer, a sample count), never a fixed sleep.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from testbed_provider.cli import prometheus_local, timeparse
from testbed_provider.cli.metrics import default_step
from testbed_provider.cli.plot import pattern_regex
from testbed_provider.cli.prometheus_local import DIRECT
from testbed_provider.services import queries

from ..e2e.stack import Stack
from ..helpers import IS_ROOT, namespaces_of
from .conftest import TESTBED, Live, _exit_masters

PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WAIT = 120.0  # seconds: an upper bound for conditions on a busy machine, never a pause


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition, what: str, procs: list[subprocess.Popen], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for p in procs:
            assert p.poll() is None, f"{p.args[0]} exited ({p.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"{what}: not after {timeout:.0f} s"
        time.sleep(0.1)


def get_json(url: str, data: bytes | None = None) -> Any:
    try:
        with DIRECT.open(urllib.request.Request(url, data=data, method="POST" if data is not None else "GET"), timeout=10) as r:
            return json.load(r)
    except OSError:
        return None


def samples(base: str, expr: str) -> int:
    reply = get_json(base + "/api/v1/query?" + urllib.parse.urlencode({"query": f"count_over_time({expr}[10m])"}))
    result = (reply or {}).get("data", {}).get("result") or []
    return int(float(result[0]["value"][1])) if result else 0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PROM_CONFIG = """\
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["127.0.0.1:{port}"]
        labels: {{host: server-1, roles: server}}
"""


@pytest.fixture(scope="module")
def backup(tmp_path_factory) -> Iterator[Path]:
    """`<dest>/<stack>/metrics/<snapshot>/` of ~8 s of real node-exporter metrics; the servers are
    gone by the time the tests read it."""
    if not (os.access(PROMETHEUS, os.X_OK) and os.access(NODE_EXPORTER, os.X_OK)):
        pytest.fail("prometheus and prometheus-node-exporter are missing: run scripts/setup-system.sh (make setup)")
    work = tmp_path_factory.mktemp("prom")
    ne_port, prom_port = free_port(), free_port()
    (work / "prometheus.yml").write_text(PROM_CONFIG.format(port=ne_port))
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{ne_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--web.enable-admin-api",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        base = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: _ready(base), "Prometheus ready", procs)
        wait_for(lambda: samples(base, 'node_cpu_seconds_total{job="node",mode="idle",cpu="0"}') >= 8, "8 scrapes", procs)
        reply = get_json(base + "/api/v1/admin/tsdb/snapshot", data=b"")
        assert reply and reply["status"] == "success", reply
        name = reply["data"]["name"]
        dest = work / "backups" / "dev" / "metrics" / name
        shutil.copytree(work / "data" / "snapshots" / name, dest)
    finally:
        for p in reversed(procs):
            stop(p)
    (dest / "backup.json").write_text(
        json.dumps({"stack": "dev", "collector": "server-1", "snapshot": name, "createdAt": "2026-01-01T00:00:00Z", "scrapeInterval": 1})
    )
    yield dest


def _ready(base: str) -> bool:
    try:
        with DIRECT.open(base + "/-/ready", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def cli(*args: str, tmp: Path, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """The installed `testbed`, its temporary files in `tmp` (checked empty afterwards)."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    return subprocess.run([str(TESTBED), *args], capture_output=True, text=True, env=env, cwd=cwd or tmp, timeout=timeout)


@pytest.fixture
def tmp(tmp_path) -> Iterator[Path]:
    d = tmp_path / "tmp"
    d.mkdir()
    yield d
    assert not list(d.iterdir()), "the CLI left temporary files (a Prometheus copy?) behind"
    assert not [p for p in _cmdlines() if str(d) in p], "a Prometheus the CLI started outlived it"


def _cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return out


def test_metrics_reads_a_backup_over_its_whole_range(backup, tmp):
    expr = 'node_memory_MemTotal_bytes{job="node"}'
    for where in (backup, backup.parent, backup.parent.parent):  # the snapshot, the metrics dir, <dest>/<stack>
        out = cli("metrics", "--backup", str(where), "--query", expr, "--format", "csv", tmp=tmp)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "time,__name__,host,instance,job,roles,value", lines[0]
        rows = [ln.split(",") for ln in lines[1:]]
        assert len(rows) >= 2 and all(r[1:3] == ["node_memory_MemTotal_bytes", "server-1"] and r[4] == "node" for r in rows), lines
        times = [float(r[0]) for r in rows]
        assert times == sorted(times)
    info = prometheus_local.find_backup(str(backup))
    data = json.loads(cli("metrics", "-b", str(backup), "-q", expr, "-f", "json", tmp=tmp).stdout)
    assert data["resultType"] == "matrix"
    [series] = data["result"]
    assert series["metric"]["host"] == "server-1"
    assert info.min_time <= series["values"][0][0] and series["values"][-1][0] <= info.max_time + 1


def test_metrics_windows_and_formats(backup, tmp):
    info = prometheus_local.find_backup(str(backup))
    rate = queries.cpu_busy(4, host="server-1")
    out = cli("metrics", "-b", str(backup), "-q", rate, "--from", "-5s", "--step", "1s", tmp=tmp)  # relative to the backup's end
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == '{host="server-1"}', lines[0]
    stamps = [timeparse.parse_time(ln.split()[0], 0) for ln in lines[1:]]
    assert stamps and all(info.max_time - 6 <= t <= info.max_time + 1 for t in stamps), (stamps, info)
    assert all(0 <= float(ln.split()[1]) <= 100 for ln in lines[1:])
    start = timeparse.rfc3339(info.min_time)
    out = cli("metrics", "-b", str(backup), "-q", queries.memory_used(), "--from", start, "--to", str(info.max_time), "-f", "json", tmp=tmp)
    assert out.returncode == 0, out.stderr
    [series] = json.loads(out.stdout)["result"]
    assert series["metric"] == {"host": "server-1"} and float(series["values"][0][1]) > 0
    empty = cli("metrics", "-b", str(backup), "-q", "no_such_metric", tmp=tmp)
    assert empty.returncode == 0 and empty.stdout == "" and "no data for `no_such_metric` between" in empty.stderr, empty.stderr


def test_plot_views_of_a_backup(backup, tmp):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = cli("metrics", "-b", str(backup), "-q", 'node_network_receive_bytes_total{job="node"}', "-f", "json", tmp=tmp)
    device = json.loads(devices.stdout)["result"][0]["metric"]["device"]  # whatever this machine has (node-exporter leaves out lo)
    png = tmp.parent / "throughput.png"
    out = cli(
        "plot", "--backup", str(backup), "--view", "throughput", "--interfaces", device, "--hosts", "server-*", "-o", str(png), tmp=tmp
    )
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = plt.imread(str(png))
    assert image.shape[0] > 100 and image.shape[1] > 100
    for view in ("cpu", "memory"):
        svg = tmp.parent / f"{view}.svg"
        out = cli("plot", "-b", str(backup), "--view", view, "--title", f"the {view}", "-o", str(svg), tmp=tmp)
        assert out.returncode == 0, out.stderr
        text = svg.read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text and "server-1" in text
    query = tmp.parent / "query.png"
    out = cli("plot", "-b", str(backup), "-q", 'node_memory_MemAvailable_bytes{job="node"}', "-o", str(query), tmp=tmp)
    assert out.returncode == 0 and query.read_bytes()[:8] == PNG_SIGNATURE, out.stderr


def test_bad_input_on_a_backup_is_one_clear_error(backup, tmp):
    cases = [
        (("plot", "-b", str(backup), "-q", "no_such_metric", "-o", str(tmp.parent / "x.png")), "no data for `no_such_metric` between "),
        (("plot", "-b", str(backup), "--view", "cpu", "--hosts", "client-*", "-o", str(tmp.parent / "x.png")), 'host=~"client-.*"'),
        (("plot", "-b", str(backup), "--view", "cpu", "-o", str(tmp.parent / "x.gif")), "must end in .png, .svg, .pdf"),
        (("metrics", "-b", str(backup), "-q", "rate(up["), "refused the query `rate(up[`"),
        (("metrics", "-b", str(backup), "-q", "up", "--from", "yesterday"), "--from: bad time `yesterday`"),
        (("metrics", "-b", str(backup), "-q", "up", "--from", "-1m", "--to", "-2m"), "empty window"),
        (("metrics", "-b", str(tmp.parent), "-q", "up"), "holds no metrics backup"),
        (("metrics", "-b", str(backup), "--stack", "dev", "-q", "up"), "--backup reads a backup directory, not a stack"),
    ]
    for args, message in cases:
        out = cli(*args, tmp=tmp)
        assert out.returncode == 2 and out.stderr.startswith("testbed: error: ") and message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp.parent / "x.png").exists()


# ---- fast: the pure helpers ----------------------------------------------------------------------


@pytest.mark.fast
def test_times_and_durations():
    assert timeparse.parse_duration("1h30m") == 5400 and timeparse.parse_duration("500ms") == 0.5 and timeparse.parse_duration("7") == 7
    assert timeparse.parse_time("now", 1000) == 1000 and timeparse.parse_time("-10m", 1000) == 400
    assert timeparse.parse_time("now-1m", 1000) == 940 and timeparse.parse_time("1714564800.5", 0) == 1714564800.5
    assert timeparse.parse_time("2024-05-01T12:00:00Z", 0) == 1714564800
    assert timeparse.parse_time("2024-05-01T14:00:00+02:00", 0) == 1714564800
    assert timeparse.rfc3339(1714564800) == "2024-05-01T12:00:00Z" and timeparse.rfc3339(1714564800.25) == "2024-05-01T12:00:00.250Z"
    for bad in ("1x", "", "-", "yesterday"):
        with pytest.raises(ValueError):
            timeparse.parse_time(bad, 0)


@pytest.mark.fast
def test_standard_queries():
    assert queries.throughput("tx", 4) == 'rate(node_network_transmit_bytes_total{job="node",device!="lo"}[4s]) * 8'
    assert (
        queries.throughput("receive", 8, host="server-.*", device="eth1")
        == 'rate(node_network_receive_bytes_total{job="node",host=~"server-.*",device=~"eth1"}[8s]) * 8'
    )
    assert queries.cpu_busy(4) == '100 * (1 - avg by (host) (rate(node_cpu_seconds_total{job="node",mode="idle"}[4s])))'
    assert "node_memory_MemTotal_bytes" in queries.memory_used() and "MemAvailable" in queries.memory_used()
    assert (
        queries.rate_window(1) == 4 and queries.rate_window(1, 10) == 11 and queries.rate_window(0.5) == 2 and queries.rate_window(15) == 60
    )
    with pytest.raises(ValueError):
        queries.throughput("up", 4)
    assert pattern_regex("server-1") == "server-1" and pattern_regex("server-*") == "server-.*"
    assert pattern_regex("a,~b.+") == "(?:a)|(?:b.+)" and pattern_regex("h.1") == "h\\.1"
    assert default_step(60, 1) == 1 and default_step(3600, 1) == 15 and default_step(10, 0.1) == 0.1


@pytest.mark.fast
def test_find_backup_picks_the_newest_snapshot(tmp_path):
    metrics = tmp_path / "dev" / "metrics"
    for name, created, lo, hi in (
        ("20260101T000000Z-a", "2026-01-01T00:00:00Z", 1000, 2000),
        ("20260102T000000Z-b", "2026-01-02T00:00:00Z", 5000, 9000),
    ):
        block = metrics / name / "01HBLOCK"
        block.mkdir(parents=True)
        (block / "meta.json").write_text(json.dumps({"minTime": lo, "maxTime": hi}))
        (metrics / name / "backup.json").write_text(json.dumps({"createdAt": created, "scrapeInterval": "500ms"}))
    for where in (tmp_path / "dev", metrics):
        found = prometheus_local.find_backup(str(where))
        assert (found.path, found.min_time, found.max_time, found.scrape_interval) == (str(metrics / "20260102T000000Z-b"), 5, 9, 0.5)


# ---- live: a stack with a Monitoring and a MetricsBackup ------------------------------------------


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> Iterator[Live]:
    """tests/e2e/projects/monitoring brought up with an iperf3 run and a backup after it: node-exporter
    on both hosts, Prometheus on server-1, the backup in the project's `backups/`."""
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    stack = Stack(tmp_path_factory.mktemp("mon"), example="monitoring", stack="dev", config={"run": "1", "backup": "1", "duration": "3"})
    cache = tempfile.mkdtemp(prefix="tbm-")  # short: SSH control socket paths are limited
    live = Live(stack, {**stack.env, "PULUMI_TESTBED_CACHE": cache}, cache, tmp_path_factory.mktemp("mon-work"))
    try:
        stack.up()
        live.reservation_id = stack.reservation()["id"]
        yield live
    finally:
        _exit_masters(cache)
        stack.destroy()
        shutil.rmtree(cache, ignore_errors=True)
        if live.reservation_id:
            assert not namespaces_of(live.reservation_id), "the stack's namespaces outlived destroy"


def test_metrics_of_a_monitoring_stack(monitored):
    out = monitored.testbed("metrics", "--query", 'up{job="node"}', "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["resultType"] == "vector"  # no --from/--to on a live collector: an instant query, now
    assert {s["metric"]["host"]: s["value"][1] for s in data["result"]} == {"server-1": "1", "client-1": "1"}
    rx = queries.throughput("rx", 4, host="server-1", device="eth1")
    ranged = monitored.testbed("metrics", "-q", rx, "--from", "-10m", "--format", "csv")  # the iperf3 run is in there
    assert ranged.returncode == 0, ranged.stderr
    rows = list(csv.DictReader(io.StringIO(ranged.stdout)))
    assert rows and {(r["host"], r["device"]) for r in rows} == {("server-1", "eth1")}
    assert max(float(r["value"]) for r in rows) > 1e6, "no iperf3 traffic seen on server-1's experiment interface"
    by_collector = monitored.testbed("metrics", "--collector", "server:9090", "-q", "count(up)")  # the resource-free path
    assert by_collector.returncode == 0 and by_collector.stdout.startswith("{}\n  "), by_collector.stderr
    png = monitored.work / "live.png"
    plot = monitored.testbed("plot", "--view", "throughput", "--interfaces", "eth1", "--from", "-10m", "-o", str(png))
    assert plot.returncode == 0, plot.stderr
    assert png.read_bytes()[:8] == PNG_SIGNATURE


def test_metrics_and_plot_of_the_stacks_backup(monitored):
    directory = monitored.stack.dir / monitored.stack.outputs()["backup"]["directory"]
    home = directory.parent.parent  # <destination>/<stack>
    out = monitored.testbed("metrics", "--backup", str(home), "-q", "count by (host) (node_memory_MemTotal_bytes)", "-f", "json")
    assert out.returncode == 0, out.stderr
    assert {s["metric"]["host"] for s in json.loads(out.stdout)["result"]} == {"server-1", "client-1"}
    # The iperf3 run's window, read back from the backup: the bytes server-1's experiment interface
    # received meanwhile (counter samples around it) are iperf3's own (headers add a few %).
    report = json.loads(monitored.stack.outputs()["bench"][0]["stdout"])
    start, seconds = report["start"]["timestamp"]["timesecs"], report["end"]["sum_received"]["seconds"]
    counter = 'node_network_receive_bytes_total{host="server-1",device="eth1"}'
    window = ("--from", str(start - 2), "--to", str(int(start + seconds) + 3), "--step", "1s", "-f", "json")
    out = monitored.testbed("metrics", "--backup", str(directory), "-q", counter, *window)
    assert out.returncode == 0, out.stderr
    [series] = json.loads(out.stdout)["result"]
    received = float(series["values"][-1][1]) - float(series["values"][0][1])
    assert abs(received - report["end"]["sum_received"]["bytes"]) <= 0.2 * report["end"]["sum_received"]["bytes"], received
    svg = monitored.work / "backup-cpu.svg"
    plot = monitored.testbed("plot", "-b", str(directory), "--view", "cpu", "-o", str(svg))
    assert plot.returncode == 0, plot.stderr
    assert "<svg" in svg.read_text() and "client-1" in svg.read_text()


def test_live_errors(monitored):
    monitored.stack.run("stack", "init", "bare", "--no-select")
    cases = [
        (("metrics", "--stack", "bare", "-q", "up"), "stack `bare` has no testbed:services:Monitoring: pass --collector HOST:PORT"),
        (("metrics", "--monitoring", "nope", "-q", "up"), "stack `dev` has no monitoring `nope` (monitorings: monitoring)"),
        (("metrics", "--collector", "client-1:9090", "-q", "up"), "no Prometheus answers at client-1:9090"),
        (("metrics", "--collector", "nope:9090", "-q", "up"), "unknown role or host `nope`"),
        (("metrics", "-q", "up", "--step", "1s"), "--step is for a range query"),
        (("plot", "--view", "cpu", "--from", "-10m", "--to", "-9m59s", "--hosts", "nope", "-o", "x.png"), "no data for `"),
    ]
    for args, message in cases:
        out = monitored.testbed(*args)
        assert out.returncode == 2 and out.stderr.startswith("testbed: error: ") and message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr
