"""`testbed ui` in a real headless browser (Debian's chromium, driven over the DevTools protocol
with aiohttp's websocket client), on the live 2-host stack of conftest.py.

Traffic comes from real components on the stack's hosts, started through `testbed run` in the
background (each in its own process group, stopped by group at the end): a
prometheus-node-exporter on both hosts, a Prometheus on server-1 scraping them with the `host`
label the Monitoring resource gives its agents, and iperf3 from client-1 to server-1 over the
experiment network. `testbed ui --collector server-1:PORT` reaches that Prometheus over SSH.
Everything waits on conditions (a deadline only bounds a wait); the screenshots are kept in the
test's tmp dir and copied to tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..e2e.stack import Stack
from ..helpers import IS_ROOT, ROOT, namespaces_of
from .conftest import TESTBED

CHROMIUM = shutil.which("chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
PROM_PORT = 19090  # per host network namespace: no clash with anything of the machine's
AGENT_PORT = 19100
IPERF_PORT = 5301
DEADLINE = 120.0  # seconds a condition may take on a busy machine before the test gives up
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup-system.sh)")


@pytest.fixture(scope="module", autouse=True)
def ui_library():
    """The page's JS library, as `make setup` installs it (idempotent: instant when done)."""
    subprocess.run([str(ROOT / "scripts" / "setup-ui.sh")], check=True, timeout=600)


# ---- processes on the hosts ----------------------------------------------------------------------


def remote(live, host: str, command: str, timeout: float = 120) -> str:
    proc = live.testbed("run", host, "--", command, timeout=timeout)
    assert proc.returncode == 0, f"{host}: {command}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def start_background(live, host: str, command: str, log: str) -> int:
    """`command` in a new session on `host` (its pid is its process group id)."""
    out = remote(live, host, f"setsid sh -c {shq('exec ' + command)} </dev/null >{log} 2>&1 & echo $!")
    return int(out.strip().splitlines()[-1])


def shq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def collector(live):
    """Node-exporters on both hosts, Prometheus on server-1 (1 s scrapes, `host` labels), and
    iperf3 traffic client-1 -> server-1 on the experiment network; everything stopped at the end."""
    hosts = {h["name"]: h for h in live.stack.outputs()["hosts"]}
    server, client = hosts["server-1"], hosts["client-1"]
    started: list[tuple[str, int]] = []
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "node",
                "static_configs": [{"targets": [f"{h['address']}:{AGENT_PORT}"], "labels": {"host": name}} for name, h in hosts.items()],
            }
        ],
    }
    encoded = base64.b64encode(json.dumps(config).encode()).decode()  # JSON is YAML
    try:
        for name, h in hosts.items():
            started.append(
                (
                    name,
                    start_background(
                        live, name, f"prometheus-node-exporter --web.listen-address={h['address']}:{AGENT_PORT}", "/tmp/ne.log"
                    ),
                )
            )
        remote(live, "server-1", f"mkdir -p /tmp/tbui-prom && echo {encoded} | base64 -d > /tmp/tbui-prom/prometheus.yml")
        started.append(
            (
                "server-1",
                start_background(
                    live,
                    "server-1",
                    "prometheus --config.file=/tmp/tbui-prom/prometheus.yml --storage.tsdb.path=/tmp/tbui-prom/data "
                    f"--web.listen-address=:{PROM_PORT}",
                    "/tmp/tbui-prom/log",
                ),
            )
        )
        started.append(("server-1", start_background(live, "server-1", f"iperf3 -s -p {IPERF_PORT}", "/tmp/iperf3-server.log")))
        # the client starts once the server listens (a condition, waited for on the host)
        remote(live, "server-1", f"until ss -Hltn 'sport = :{IPERF_PORT}' | grep -q .; do sleep 0.1; done", timeout=DEADLINE)
        address = server["networks"][0]["address"]
        started.append(
            (
                "client-1",
                start_background(live, "client-1", f"iperf3 -c {address} -p {IPERF_PORT} -t 3600 -b 50M", "/tmp/iperf3-client.log"),
            )
        )
        yield f"server-1:{PROM_PORT}", server, client
    finally:
        for host in sorted({h for h, _ in started}):
            groups = " ".join(f"-{pid}" for h, pid in started if h == host)
            live.testbed("run", host, "--", f"kill -TERM {groups} 2>/dev/null; true", timeout=60)


# ---- testbed ui ----------------------------------------------------------------------------------


class Ui:
    """A running `testbed ui` (its URL read from its first line of output)."""

    def __init__(self, stack_dir: Path, env: dict[str, str], *args: str):
        self.log = tempfile.TemporaryFile()  # closed in stop()
        self.proc = subprocess.Popen(
            [str(TESTBED), "ui", "--port", "0", *args], cwd=stack_dir, env=env, stdout=subprocess.PIPE, stderr=self.log
        )
        line = self._first_line(DEADLINE)
        assert line.startswith("http://127.0.0.1:") and line.endswith("/"), line
        self.url = line

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        data = b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
        sel.close()
        if b"\n" not in data:
            self.stop()
            raise AssertionError(f"testbed ui printed no URL: {data!r}; stderr: {self.stderr()}")
        return data.split(b"\n", 1)[0].decode()

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def get(self, path: str) -> Any:
        with NO_PROXY.open(self.url + path.lstrip("/"), timeout=30) as resp:
            return json.load(resp)

    def children(self) -> list[int]:
        """Pids of its child processes (the ssh of the forward)."""
        out = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
        return out

    def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C or a supervisor; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.log.close()
        return self.proc.returncode


# ---- the browser ---------------------------------------------------------------------------------


class Page:
    """One headless chromium tab over the DevTools protocol."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def value(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str) -> Any:
        """Until `expression` is truthy in the page (its value), or fail after DEADLINE."""
        deadline = time.monotonic() + DEADLINE
        guarded = f"(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()"  # false while the page loads
        while True:
            value = await self.value(guarded)
            if value:
                return value
            if time.monotonic() > deadline:
                status = await self.value("document.getElementById('status') && document.getElementById('status').textContent")
                raise AssertionError(f"the page never showed {what} (status line: {status!r})")
            await asyncio.sleep(0.2)  # the polling period of the condition, not a wait for an outcome

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(path, ARTIFACTS / path.name)
        return path


async def _browse(url: str, profile: Path, scenario: Any) -> Any:
    import aiohttp

    log = open(profile.parent / "chromium.log", "wb")  # closed below
    proc = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless=new",
            "--no-sandbox",  # as root
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1400,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert proc.poll() is None, f"chromium exited ({proc.returncode}); see {log.name}"
            assert time.monotonic() < deadline, "chromium's DevTools port never appeared"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json(content_type=None)
            page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            async with session.ws_connect(page_ws, max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Page.navigate", url=url)
                return await scenario(page)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def browse(url: str, tmp: Path, scenario: Any) -> Any:
    profile = tmp / "chromium-profile"  # private: no state shared with another run or a user's browser
    profile.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_browse(url, profile, scenario))


HOSTS_JS = "Array.from(document.querySelectorAll('#hosts li')).map(li => ({name: li.dataset.name, x: li.dataset.x, text: li.textContent}))"
LINKS_JS = "Object.fromEntries(Array.from(document.querySelectorAll('#links tbody tr')).map(tr => [tr.dataset.id, {rx: tr.dataset.rx, tx: tr.dataset.tx}]))"


# ---- tests ---------------------------------------------------------------------------------------


def test_page_without_monitoring_draws_the_topology_and_says_there_is_no_traffic_data(live, tmp_path):
    hosts = live.stack.outputs()["hosts"]
    ui = Ui(live.stack.dir, live.env)
    try:
        served = ui.get("/api/topology")
        drawn = live.testbed("topology", "-f", "json")
        assert drawn.returncode == 0, drawn.stderr
        assert served["model"] == json.loads(drawn.stdout)  # one model for both commands
        assert ui.get("/api/traffic")["status"] == "no-monitoring"

        async def scenario(page: Page) -> dict[str, Any]:
            await page.wait_for(
                "document.body.dataset.state === 'ready' && document.body.dataset.traffic === 'no-monitoring'", "the topology"
            )
            shot = await page.screenshot(tmp_path / "ui-no-monitoring.png")
            return {
                "hosts": await page.value(HOSTS_JS),
                "nodes": await page.value("window.testbedCy.nodes('[kind = \"host\"]').map(n => n.data('name'))"),
                "networks": await page.value("Array.from(document.querySelectorAll('#networks li')).map(li => li.textContent)"),
                "status": await page.value("document.getElementById('status').textContent"),
                "shot": shot,
            }

        seen = browse(ui.url, tmp_path, scenario)
    finally:
        assert ui.stop() == 0, ui.stderr()
    names = sorted(h["name"] for h in hosts)
    assert sorted(seen["nodes"]) == names  # cytoscape holds them
    assert sorted(h["name"] for h in seen["hosts"]) == names  # and the list rendered from its nodes says so
    for h in hosts:
        [li] = [x for x in seen["hosts"] if x["name"] == h["name"]]
        assert h["address"] in li["text"] and li["x"] not in (None, "", "NaN")  # laid out: a rendered position
    assert any("experiment 198.18.0.0/24" in n for n in seen["networks"]) and any("management network" in n for n in seen["networks"])
    assert "no monitoring deployed" in seen["status"]
    print(f"screenshot: {seen['shot']} (and {ARTIFACTS / seen['shot'].name})")


def test_page_shows_live_traffic_per_link_from_a_prometheus_collector(live, collector, tmp_path):
    endpoint, server, client = collector
    ui = Ui(live.stack.dir, live.env, "--collector", endpoint, "--refresh", "1")
    forwards = ui.children()
    try:
        assert forwards, "no SSH forward was started"

        async def scenario(page: Page) -> dict[str, Any]:
            # the experiment links carry iperf3's 50 Mbit/s: wait until the page shows it
            await page.wait_for(
                "document.body.dataset.traffic === 'ok' && Array.from(document.querySelectorAll('#links tbody tr'))"
                ".some(tr => tr.dataset.id.endsWith('|experiment') && Number(tr.dataset.rx) > 1e6)",
                "non-zero traffic on an experiment link",
            )
            updates = int(await page.value("document.body.dataset.trafficUpdates"))
            await page.wait_for(f"Number(document.body.dataset.trafficUpdates) > {updates}", "a refresh")  # it keeps refreshing
            shot = await page.screenshot(tmp_path / "ui-traffic.png")
            return {
                "hosts": await page.value(HOSTS_JS),
                "links": await page.value(LINKS_JS),
                "edges": await page.value(
                    "Object.fromEntries(window.testbedCy.edges().map(e => [e.id(), {width: e.data('width'), label: e.data('label')}]))"
                ),
                "prometheus": await page.value(
                    "document.getElementById('prom-ui') && document.getElementById('prom-ui').getAttribute('href')"
                ),
                "shot": shot,
            }

        seen = browse(ui.url, tmp_path, scenario)
        assert seen["prometheus"] == "/prometheus/"
        ready = NO_PROXY.open(ui.url + "prometheus/-/ready", timeout=30)  # the redirect reaches Prometheus' own UI
        assert ready.status == 200 and b"Ready" in ready.read()
    finally:
        assert ui.stop() == 0, ui.stderr()
    assert sorted(h["name"] for h in seen["hosts"]) == ["client-1", "server-1"]
    experiment = {"server-1": "nodes/server-1|experiment", "client-1": "nodes/client-1|experiment"}
    assert float(seen["links"][experiment["server-1"]]["rx"]) > 1e6  # server-1 receives iperf3's stream
    assert float(seen["links"][experiment["client-1"]]["tx"]) > 1e6  # client-1 sends it
    wide = seen["edges"][experiment["server-1"]]
    assert wide["width"] > seen["edges"]["nodes/server-1|_ssh"]["width"] and "Mb/s" in wide["label"]
    for link_id in ("nodes/server-1|_ssh", "nodes/client-1|_ssh"):  # the management links are matched too (eth0)
        assert seen["links"][link_id]["rx"] != "", link_id
    for pid in forwards:  # the SSH forward ended with the server
        assert not Path(f"/proc/{pid}").exists(), f"ssh {pid} outlived testbed ui"
    print(f"screenshot: {seen['shot']} (and {ARTIFACTS / seen['shot'].name})")


def test_bad_collector_and_missing_monitoring_are_one_error_line(live):
    proc = live.testbed("ui", "--collector", "server-1")
    assert proc.returncode == 2 and "bad --collector `server-1`" in proc.stderr, proc.stderr
    proc = live.testbed("ui", "--monitoring", "nope")
    assert proc.returncode == 2 and "has no Monitoring `nope`" in proc.stderr, proc.stderr


def test_page_reads_traffic_from_the_stacks_own_monitoring(tmp_path):
    """A stack with a testbed:services:Monitoring (tests/cli/projects/monitored): no --collector,
    the ui finds the collector in the Monitoring's `prometheus` output and reaches it over SSH."""
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    stack = Stack(tmp_path, example=str(Path(__file__).parent / "projects" / "monitored"), stack="dev")
    cache = tempfile.mkdtemp(prefix="tbui-")  # the CLI's key files: private to this test
    env = {**stack.env, "PULUMI_TESTBED_CACHE": cache}
    reservation = ""
    try:
        stack.up()
        reservation = stack.reservation()["id"]
        ui = Ui(stack.dir, env, "--refresh", "1")
        try:
            assert ui.get("/api/topology")["settings"]["collector"] == "Monitoring `monitoring` (server-1:9090)"

            async def scenario(page: Page) -> dict[str, Any]:
                await page.wait_for(
                    "document.body.dataset.traffic === 'ok' && Number(document.querySelector(\"tr[data-id='nodes/server-1|experiment']\")"
                    ".dataset.rx) > 1e6",
                    "the iperf3 stream on server-1's experiment link",
                )
                return {
                    "status": await page.value("document.getElementById('status').textContent"),
                    "label": await page.value("window.testbedCy.getElementById('nodes/server-1').data('label')"),
                    "shot": await page.screenshot(tmp_path / "ui-monitoring.png"),
                }

            seen = browse(ui.url, tmp_path, scenario)
        finally:
            assert ui.stop() == 0, ui.stderr()
        assert "traffic from Monitoring `monitoring`" in seen["status"]
        assert "metrics collector" in seen["label"]  # the model knows where the collector runs
        print(f"screenshot: {seen['shot']} (and {ARTIFACTS / seen['shot'].name})")
        prometheus_ui_through_the_tunnel(stack, env, tmp_path)
    finally:
        stack.destroy()
        shutil.rmtree(cache, ignore_errors=True)
    assert stack.resources() == []
    if reservation:
        assert not namespaces_of(reservation), "the stack's namespaces outlived destroy"


def prometheus_ui_through_the_tunnel(stack: Stack, env: dict[str, str], tmp_path: Path) -> None:
    """The Monitoring's own `tunnel` command and query link, as a user follows them: Prometheus'
    UI opens in the browser and its table shows the iperf3 stream on server-1's experiment
    interface (its graph tab is kept as a screenshot)."""
    outputs = stack.outputs()
    tunnel_words = outputs["tunnel"].split()
    assert tunnel_words[:2] == ["testbed", "tunnel"], outputs["tunnel"]
    # The same command without its local port: a free one (the suggested one may be taken on a shared machine).
    proc = subprocess.Popen(
        [str(TESTBED), *tunnel_words[1:-1]], cwd=stack.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "forwarding http://127.0.0.1:<port>/ → server-1:9090 …"
        assert line.startswith("forwarding http://127.0.0.1:"), line + (proc.stderr.read() if proc.poll() is not None else "")
        base = line.split()[1].rstrip("/")
        query = outputs["receive"]  # the Monitoring's ready-made link, through the tunnel's port
        table = query.replace("http://127.0.0.1:9090", base).replace("g0.tab=0", "g0.tab=1")
        graph = query.replace("http://127.0.0.1:9090", base)

        async def read_table(page: Page) -> list[list[str]]:
            rows = await page.wait_for(
                "(() => { const r = Array.from(document.querySelectorAll('table.console_table tbody tr'))"
                ".map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()));"
                " return r.some(c => c[0].includes('server-1') && c[0].includes('eth1') && Number(c[1]) > 1e6) && r; })()",
                "server-1's experiment interface receiving in Prometheus' table",
            )
            await page.screenshot(tmp_path / "prometheus-table.png")
            return rows

        async def draw_graph(page: Page) -> int:
            paths = await page.wait_for("document.querySelectorAll('.graph_area svg path').length", "Prometheus' graph")
            await page.screenshot(tmp_path / "prometheus-graph.png")
            return paths

        rows = browse(table, tmp_path / "table", read_table)  # a browser profile each: no stale DevTools port
        assert any("client-1" in r[0] for r in rows) and any("server-1" in r[0] for r in rows), rows
        assert browse(graph, tmp_path / "graph", draw_graph) > 0
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
