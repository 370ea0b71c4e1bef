"""`testbed ui`: a local web page of the experiment's topology with live per-link traffic.

The page (static/) draws the same model as `testbed topology --format json` with cytoscape,
installed from the npm registry by scripts/setup-ui.sh into node_modules/ beside this file (pinned
in package-lock.json; never a CDN: the page works offline). This server (stdlib only) listens on
127.0.0.1 and serves:

- `/`, `/static/…`, `/vendor/cytoscape.min.js`: the page;
- `/api/topology`: the model, plus the page's settings (refresh period, collector, links);
- `/api/traffic`: per model link, received and transmitted bits/s, from the stack's Monitoring
  collector (Prometheus) through an SSH forward (cli/tunnel.py), or from `--collector HOST:PORT`;
- `/prometheus/…`: a redirect to Prometheus' own UI on the forwarded local port.

Series are matched to links by the `host` label (the Monitoring labels every agent's series with
its inventory host name) and node-exporter's `device` (the interface names the inventory records
for experiment networks). The management link's device is not in the inventory: it is `eth0` on
the local testbed; elsewhere it is the device node-exporter's `node_network_address_info` gives
the host's management address, else the host's only device that no experiment link uses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mimetypes
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional

from .. import stacks, topology

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.path.join(HERE, "static")
VENDOR = {"cytoscape.min.js": os.path.join(HERE, "node_modules", "cytoscape", "dist", "cytoscape.min.js")}
BIND = "127.0.0.1"  # never another address: the page and the forwarded Prometheus are for this machine only
RATE_WINDOW = "1m"  # irate() takes the last two samples in it: any scrape interval up to 30 s works
QUERY_TIMEOUT = 10.0
# The collector is on this machine's loopback (the forward) or reached directly: never through an HTTP proxy of the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Devices that are no link of the inventory: loopback and the usual virtual interfaces.
VIRTUAL_PREFIXES = ("lo", "docker", "veth", "br-", "virbr", "lxc", "tun", "tap", "cni", "flannel", "cali", "vxlan")
QUERIES = {
    "rx": f"sum by (host, device) (irate(node_network_receive_bytes_total[{RATE_WINDOW}])) * 8",
    "tx": f"sum by (host, device) (irate(node_network_transmit_bytes_total[{RATE_WINDOW}])) * 8",
    "addresses": "node_network_address_info",
}


@dataclass
class Collector:
    """Where traffic comes from: a Prometheus on a local port (forwarded, or direct)."""

    description: str  # e.g. "Monitoring `monitoring` (server-1:9090)"
    base_url: str  # http://127.0.0.1:<port>, Prometheus' own root
    reservation: Optional[str]  # the reservation whose hosts its `host` labels name (None: any)
    alive: Any = None  # () -> Optional[str]: why the forward is gone, None while it works


@dataclass
class State:
    """What the request handlers share (read-only after start-up)."""

    built: dict[str, Any]
    refresh: float
    collector: Optional[Collector]
    note: str  # why there is no traffic data, when there is no collector
    lock: threading.Lock = field(default_factory=threading.Lock)


# ---- finding the collector -----------------------------------------------------------------------


def _target_for(cwd: str, stack: str, name: str, raw: Any) -> stacks.Target:
    from ...remote.inventory import parse

    try:
        return stacks.Target(os.path.abspath(cwd), stack, name, parse(raw), raw)
    except ValueError as err:
        raise stacks.CliError(f"`{name}` of stack `{stack}`: {err}") from None


def _reservation_targets(cwd: str, stack: str, deployment: dict[str, Any]) -> list[stacks.Target]:
    out = []
    for r in deployment.get("resources") or []:
        if r.get("type") == stacks.RESERVATION and not r.get("delete"):
            raw = stacks.reveal(r.get("outputs") or {}).get("inventory")
            if isinstance(raw, dict):
                out.append(_target_for(cwd, stack, r["urn"].rsplit("::", 1)[-1], raw))
    return out


def _pick_monitoring(stack: str, deployment: dict[str, Any], wanted: Optional[str]) -> Optional[tuple[str, dict[str, Any]]]:
    found = topology.monitorings(deployment)
    names = [n for n, _ in found]
    if wanted is not None:
        chosen = [m for m in found if m[0] == wanted]
        if not chosen:
            raise stacks.CliError(
                f"stack `{stack}` has no Monitoring `{wanted}`" + (f" (Monitorings: {', '.join(names)})" if names else "")
            )
        return chosen[0]
    if len(found) > 1:
        raise stacks.CliError(f"stack `{stack}` has {len(found)} Monitorings ({', '.join(names)}): pass --monitoring NAME")
    return found[0] if found else None


@contextlib.contextmanager
def _forwarded(target: stacks.Target, host: str, port: int, description: str) -> Iterator[Collector]:
    from .. import tunnel

    with tunnel.open_forward(target, host, port) as fwd:

        def alive() -> Optional[str]:
            return None if fwd.proc.poll() is None else f"the SSH forward to {host}:{port} ended: {fwd.error_text()}"

        yield Collector(description, f"http://{BIND}:{fwd.local_port}", target.reservation, alive)


@contextlib.contextmanager
def open_collector(
    cwd: str, stack: str, deployment: dict[str, Any], monitoring: Optional[str], endpoint: Optional[str]
) -> Iterator[tuple[Optional[Collector], str]]:
    """(the collector, or None and why not). `endpoint` (`--collector HOST:PORT`) wins: HOST is
    a host of one of the stack's reservations (forwarded over its SSH) or, when no reservation has
    such a host, an address this machine reaches directly."""
    if endpoint is not None:
        host, sep, port_text = endpoint.rpartition(":")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise stacks.CliError(f"bad --collector `{endpoint}`: expected HOST:PORT (e.g. server-1:9090)")
        port = int(port_text)
        for target in _reservation_targets(cwd, stack, deployment):
            if host in target.inventory.names:
                with _forwarded(target, host, port, f"Prometheus on {host}:{port}") as c:
                    yield c, ""
                return
        yield Collector(f"Prometheus at {host}:{port}", f"http://{host}:{port}", None), ""
        return
    chosen = _pick_monitoring(stack, deployment, monitoring)
    if chosen is None:
        yield None, "no monitoring deployed (no testbed:services:Monitoring in the stack): no traffic data"
        return
    name, outputs = chosen
    collector = topology.collector_of(outputs)
    if collector is None:
        yield None, f"Monitoring `{name}` has no collector in its outputs yet (run `pulumi up`): no traffic data"
        return
    host, port = str(collector["host"]), int(collector["port"])
    raw = outputs.get("inventory")
    if isinstance(raw, dict):
        target = _target_for(cwd, stack, name, raw)
        reservation = next((t.reservation for t in _reservation_targets(cwd, stack, deployment) if host in t.inventory.names), None)
    else:
        found = [t for t in _reservation_targets(cwd, stack, deployment) if host in t.inventory.names]
        if not found:
            raise stacks.CliError(f"Monitoring `{name}`: no reservation of stack `{stack}` has its collector host `{host}`")
        target, reservation = found[0], found[0].reservation
    with _forwarded(target, host, port, f"Monitoring `{name}` ({host}:{port})") as c:
        c.reservation = reservation
        yield c, ""


# ---- traffic -------------------------------------------------------------------------------------


def _query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """An instant PromQL query's vector result."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with OPENER.open(url, timeout=QUERY_TIMEOUT) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(body.get("error") or "query failed")
    result = body.get("data", {}).get("result") or []
    return [r for r in result if isinstance(r, dict)]


def _value(sample: dict[str, Any]) -> Optional[float]:
    try:
        v = float(sample["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return v if v == v else None  # NaN: no rate yet


def match_links(
    built: dict[str, Any],
    reservation: Optional[str],
    rx: dict[tuple[str, str], float],
    tx: dict[tuple[str, str], float],
    addresses: dict[tuple[str, str], str],
) -> dict[str, dict[str, Any]]:
    """Model link id -> {host, device, rxBps, txBps} for every link a series can be matched to
    (see the module docstring for how the management link's device is found)."""
    hosts = {h["id"]: h for h in built["hosts"] if reservation is None or h["reservation"] == reservation}
    devices: dict[str, set[str]] = {}
    for host, dev in [*rx, *tx]:
        devices.setdefault(host, set()).add(dev)
    by_host: dict[str, list[dict[str, Any]]] = {}
    for link in built["links"]:
        if link["host"] in hosts:
            by_host.setdefault(link["host"], []).append(link)
    out: dict[str, dict[str, Any]] = {}
    for host_id, links in by_host.items():
        name = str(hosts[host_id]["name"])
        seen = devices.get(name, set())
        named = {link["interface"] for link in links if link.get("interface")}
        for link in links:
            device: Optional[str] = link.get("interface")
            if not device:
                by_address = [d for (h, d), a in addresses.items() if h == name and a == link["address"]]
                others = [d for d in seen - named if not d.startswith(VIRTUAL_PREFIXES)]
                device = by_address[0] if by_address else (others[0] if len(others) == 1 else None)
            if device and device in seen:
                out[link["id"]] = {"host": name, "device": device, "rxBps": rx.get((name, device)), "txBps": tx.get((name, device))}
    return out


def traffic(state: State) -> dict[str, Any]:
    """The `/api/traffic` answer: `status` ok | no-monitoring | error, `message`, `links`."""
    now = time.time()
    c = state.collector
    if c is None:
        return {"status": "no-monitoring", "message": state.note, "time": now, "links": {}}
    gone = c.alive() if c.alive else None
    if gone:
        return {"status": "error", "message": gone, "time": now, "links": {}}
    try:
        series = {k: _query(c.base_url, q) for k, q in QUERIES.items()}
    except (OSError, RuntimeError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        return {"status": "error", "message": f"{c.description}: {reason}", "time": now, "links": {}}

    def by_key(samples: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        out = {}
        for s in samples:
            m, v = s.get("metric") or {}, _value(s)
            if m.get("host") and m.get("device") and v is not None:
                out[(m["host"], m["device"])] = v
        return out

    addresses = {
        (m["host"], m["device"]): m["address"]
        for s in series["addresses"]
        if (m := s.get("metric") or {}).get("host") and m.get("device") and m.get("address")
    }
    links = match_links(state.built, c.reservation, by_key(series["rx"]), by_key(series["tx"]), addresses)
    message = "" if links else f"{c.description} has no node-exporter series for the inventory's hosts yet"
    return {"status": "ok", "message": message, "time": now, "links": links, "queries": {k: QUERIES[k] for k in ("rx", "tx")}}


# ---- HTTP ----------------------------------------------------------------------------------------


def _settings(state: State) -> dict[str, Any]:
    c = state.collector
    return {
        "refreshSeconds": state.refresh,
        "collector": c.description if c else None,
        "prometheus": "/prometheus/" if c else None,
        "note": state.note,
        "colours": topology.role_colours(state.built),
    }


class Handler(BaseHTTPRequestHandler):
    """GET only; everything else is 405."""

    server_version = "testbed-ui"
    state: State  # set on the subclass serve() makes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        if os.environ.get("TESTBED_UI_LOG"):
            super().log_message(format, *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: Optional[dict[str, str]] = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value: Any) -> None:
        self._send(200, json.dumps(value).encode(), "application/json")

    def _file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                body = f.read()
        except OSError:
            self._send(404, b"not found\n", "text/plain")
            return
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        self._send(200, body, ctype + ("; charset=utf-8" if ctype.startswith("text/") or ctype.endswith("javascript") else ""))

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._file(os.path.join(STATIC, "index.html"))
        elif path.startswith("/static/") and "/.." not in path and path.count("/") == 2:
            self._file(os.path.join(STATIC, path[len("/static/") :]))
        elif path.startswith("/vendor/") and path[len("/vendor/") :] in VENDOR:
            self._file(VENDOR[path[len("/vendor/") :]])
        elif path == "/api/topology":
            self._json({"model": self.state.built, "settings": _settings(self.state)})
        elif path == "/api/traffic":
            self._json(traffic(self.state))
        elif path == "/prometheus" or path.startswith("/prometheus/"):
            c = self.state.collector
            if c is None:
                self._send(404, (self.state.note + "\n").encode(), "text/plain; charset=utf-8")
            else:
                rest = self.path[len("/prometheus") :].lstrip("/")
                self._send(302, b"", "text/plain", {"Location": f"{c.base_url}/{rest}"})
        else:
            self._send(404, b"not found\n", "text/plain")


def serve(cwd: str, stack: Optional[str], port: int, monitoring: Optional[str], refresh: float, endpoint: Optional[str]) -> int:
    """Serve until SIGINT or SIGTERM; exit status 0."""
    missing = [p for p in VENDOR.values() if not os.path.isfile(p)]
    if missing:
        raise stacks.CliError(f"the page's JS library is not installed ({missing[0]}): run scripts/setup-ui.sh (make setup)")
    if not 0 <= port < 65536:
        raise stacks.CliError(f"bad --port {port}: must be 0-65535")
    if not refresh > 0:
        raise stacks.CliError(f"bad --refresh {refresh}: must be a positive number of seconds")
    name, deployment = stacks.export(cwd, stack)
    built = topology.model(name, deployment)
    if not built["hosts"]:
        raise stacks.CliError(f"stack `{name}` has no reserved hosts (no {stacks.RESERVATION} with hosts: run `pulumi up`)")
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_collector(cwd, name, deployment, monitoring, endpoint) as (collector, note):
            state = State(built, refresh, collector, note)
            handler = type("BoundHandler", (Handler,), {"state": state})
            try:
                httpd = ThreadingHTTPServer((BIND, port), handler)
            except OSError as err:
                raise stacks.CliError(f"cannot listen on {BIND}:{port}: {err.strerror or err}") from None
            httpd.daemon_threads = True
            thread = threading.Thread(target=httpd.serve_forever, name="testbed-ui", daemon=True)
            thread.start()
            try:
                print(f"http://{BIND}:{httpd.server_address[1]}/", flush=True)
                print(
                    f"testbed ui: stack `{name}`, {len(built['hosts'])} hosts; traffic: {collector.description if collector else note} "
                    "(Ctrl-C stops)",
                    file=sys.stderr,
                    flush=True,
                )
                stop.wait()
            finally:
                httpd.shutdown()
                httpd.server_close()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `ui` subcommand (registered by cli/__init__.py; `handler` dispatches)."""
    p = sub.add_parser(
        "ui",
        help="serve a local web page of the topology with live per-link traffic",
        description="Serve, on 127.0.0.1 only, a page drawing the stack's hosts and networks (the model of `testbed "
        "topology`) with live traffic per host-network link from the stack's Monitoring collector (Prometheus, "
        "reached over the reservation's SSH), until Ctrl-C or SIGTERM. Prints the page's URL.",
    )
    p.add_argument("--cwd", default=".", metavar="DIR", help="the Pulumi project directory (default: .)")
    p.add_argument("--stack", "-s", metavar="NAME", help="the stack (default: the selected stack)")
    p.add_argument("--port", "-p", type=int, default=0, metavar="PORT", help="the local port (default 0: a free one)")
    p.add_argument("--monitoring", metavar="NAME", help="the testbed:services:Monitoring to read, when the stack has several")
    p.add_argument(
        "--collector",
        metavar="HOST:PORT",
        help="read traffic from this Prometheus instead: HOST is a host of the stack (reached over SSH) or an address this machine reaches",
    )
    p.add_argument("--refresh", type=float, default=2.0, metavar="SECONDS", help="seconds between two traffic updates (default 2)")
    p.set_defaults(handler=lambda args: serve(args.cwd, args.stack, args.port, args.monitoring, args.refresh, args.collector))
