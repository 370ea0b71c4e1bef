"""`testbed metrics` and `testbed plot`: PromQL over a stack's collector, or over a backup.

Three sources, one API (Prometheus' HTTP API, so any PromQL works as in its UI):

* a stack's `testbed:services:Monitoring` (`--monitoring NAME` when there are several): its
  collector host and port, reached through `tunnel.forward` on the Monitoring's inventory;
* `--collector HOST:PORT`: any Prometheus on a host of the stack's reservation, same tunnel;
* `--backup DIR`: a MetricsBackup's TSDB snapshot, served by a temporary local Prometheus
  (prometheus_local.py) for the duration of the command.

Without `--from`/`--to`, `testbed metrics` asks a live collector an instant query (now, as the
console of Prometheus' UI does) and a backup a range query over everything it recorded; with
either, a range query (`--to` defaults to now, `--from` to the start of the data). `--step`
defaults to about 250 points over the window, never finer than a scrape.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator, Optional, TextIO

from . import stacks
from .prometheus_local import DIRECT
from .timeparse import parse_duration, parse_time, rfc3339

MONITORING = "testbed:services:Monitoring"
DEFAULT_SCRAPE_INTERVAL = 1.0  # seconds: the Monitoring's default
POINTS = 250  # a default step gives about this many points over the window (as Prometheus' graph does)
MAX_POINTS = 11000  # Prometheus refuses more points per series
LIVE_WINDOW = 3600.0  # seconds: a live plot without --from shows at most the last hour held in memory
HTTP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Source:
    """A Prometheus API to query, and what `now` and the default window mean for it."""

    url: str
    label: str  # for messages: "server-1:9090 (stack `dev`)", "backup /path"
    now: float
    window: Optional[tuple[float, float]]  # a backup's recorded range; None when live
    scrape_interval: float
    name: str = ""  # short, for a figure's title (default: label)

    def api(self, path: str, params: dict[str, str]) -> Any:
        """The `data` of a successful API call; a CliError saying why otherwise."""
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        try:
            with DIRECT.open(req, timeout=HTTP_TIMEOUT) as resp:
                reply = json.load(resp)
        except urllib.error.HTTPError as err:
            try:
                why = json.load(err).get("error") or err.reason
            except ValueError:
                why = err.reason
            what = f"the query `{params['query']}`" if "query" in params else path
            raise stacks.CliError(f"Prometheus at {self.label} refused {what}: {why}") from None
        except (OSError, http.client.HTTPException, ValueError) as err:
            why = getattr(err, "reason", None) or err
            raise stacks.CliError(f"no Prometheus answers at {self.label} ({why}): is it running there?") from None
        if reply.get("status") != "success":
            raise stacks.CliError(f"Prometheus at {self.label}: {reply.get('error') or reply}")
        return reply.get("data")

    def data_start(self) -> Optional[float]:
        """When the data held in memory starts (a live collector's head block), or None."""
        try:
            with DIRECT.open(self.url + "/api/v1/status/tsdb", timeout=HTTP_TIMEOUT) as resp:
                head = json.load(resp)["data"]["headStats"]
            lo = int(head["minTime"]) / 1000
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            return None
        return lo if 0 < lo < self.now else None


# ---- choosing the source -------------------------------------------------------------------------


def _collector_of(name: str, outputs: dict[str, Any]) -> dict[str, Any]:
    """The Monitoring's collector record: `prometheus` (or `collector`, when it is a record)."""
    for key in ("prometheus", "collector"):
        value = outputs.get(key)
        if isinstance(value, dict) and value.get("host"):
            return value
    raise stacks.CliError(f"monitoring `{name}` has no collector in its outputs yet (run `pulumi up`)")


def _pick_monitoring(stack: str, deployment: dict[str, Any], name: Optional[str]) -> tuple[str, dict[str, Any]]:
    found = stacks.find_resources(deployment, MONITORING)
    names = [n for n, _ in found]
    if not found:
        raise stacks.CliError(
            f"stack `{stack}` has no {MONITORING}: pass --collector HOST:PORT (a Prometheus on one of its hosts) or --backup DIR"
        )
    if name is None:
        if len(found) > 1:
            raise stacks.CliError(f"stack `{stack}` has {len(found)} monitorings ({', '.join(names)}): pass --monitoring NAME")
        return found[0]
    for n, outputs in found:
        if n == name:
            return n, outputs
    raise stacks.CliError(f"stack `{stack}` has no monitoring `{name}` (monitorings: {', '.join(names)})")


@contextlib.contextmanager
def open_source(args: argparse.Namespace) -> Iterator[Source]:
    """The source the command line names, open for the duration of the `with` block."""
    from . import prometheus_local, tunnel

    if args.backup:
        if args.stack or args.collector or args.monitoring or args.reservation:
            raise stacks.CliError("--backup reads a backup directory, not a stack: drop --stack/--collector/--monitoring/--reservation")
        backup = prometheus_local.find_backup(args.backup)
        with prometheus_local.serve(backup) as url:
            interval = backup.scrape_interval or DEFAULT_SCRAPE_INTERVAL
            short = (
                f"stack `{backup.info['stack']}`, backup {os.path.basename(backup.path)}"
                if backup.info.get("stack")
                else os.path.basename(backup.path)
            )
            yield Source(url, f"backup {backup.path}", backup.max_time, (backup.min_time, backup.max_time), interval, short)
        return
    if args.collector:
        if args.monitoring:
            raise stacks.CliError("--collector and --monitoring name two collectors: pass one")
        host, port = tunnel.parse_endpoint(args.collector)
        target = stacks.load(args.cwd, args.stack, args.reservation)
        interval = DEFAULT_SCRAPE_INTERVAL
    else:
        stack, deployment = stacks.export(args.cwd, args.stack)
        name, outputs = _pick_monitoring(stack, deployment, args.monitoring)
        collector = _collector_of(name, outputs)
        host, port = str(collector["host"]), int(collector.get("port") or 9090)
        target = stacks.target_of(args.cwd, stack, name, outputs.get("inventory"), what="monitoring")
        from .prometheus_local import parse_interval

        interval = parse_interval(collector.get("scrapeInterval", outputs.get("scrapeInterval"))) or DEFAULT_SCRAPE_INTERVAL
    with tunnel.forward(target, host, port) as local_port:
        yield Source(f"http://127.0.0.1:{local_port}", f"{host}:{port} (stack `{target.stack}`)", time.time(), None, interval)


# ---- the window ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step: float

    def describe(self) -> str:
        return f"between {rfc3339(self.start)} and {rfc3339(self.end)}"


def _time(text: str, source: Source, what: str) -> float:
    try:
        return parse_time(text, source.now)
    except ValueError as err:
        raise stacks.CliError(f"{what}: {err}") from None


def default_step(span: float, scrape_interval: float) -> float:
    """About POINTS points over `span`, whole seconds (or the scrape interval when finer), within MAX_POINTS."""
    step = max(scrape_interval, math.ceil(span / POINTS) if span > POINTS else span / POINTS)
    return max(step, span / MAX_POINTS, 0.001)


def window(source: Source, start: Optional[str], end: Optional[str], step: Optional[str], live_default: Optional[float]) -> Window:
    """The range the command line asks for; `live_default`: how far back a live range goes without --from."""
    hi = _time(end, source, "--to") if end else source.now
    if start:
        lo = _time(start, source, "--from")
    elif source.window:
        lo = source.window[0]
    else:
        lo = max(hi - (live_default or LIVE_WINDOW), source.data_start() or 0)
    if lo >= hi:
        raise stacks.CliError(f"empty window: --from ({rfc3339(lo)}) is not before --to ({rfc3339(hi)})")
    if step:
        try:
            s = parse_duration(step)
        except ValueError as err:
            raise stacks.CliError(f"--step: {err}") from None
        if s <= 0:
            raise stacks.CliError("--step must be positive")
        if (hi - lo) / s > MAX_POINTS:
            raise stacks.CliError(f"--step {step} gives more than {MAX_POINTS} points over the window: take a larger step")
    else:
        s = default_step(hi - lo, source.scrape_interval)
    return Window(lo, hi, s)


def range_query(source: Source, query: str, w: Window) -> dict[str, Any]:
    return dict(source.api("/api/v1/query_range", {"query": query, "start": repr(w.start), "end": repr(w.end), "step": repr(w.step)}))


# ---- output --------------------------------------------------------------------------------------


def series_label(metric: dict[str, str]) -> str:
    """`name{a="b", …}`, as Prometheus prints a series."""
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _samples(item: dict[str, Any]) -> list[list[Any]]:
    return item.get("values") or ([item["value"]] if "value" in item else [])


def write_table(data: dict[str, Any], out: TextIO) -> None:
    kind, result = data.get("resultType"), data.get("result") or []
    if kind in ("scalar", "string"):
        out.write(f"{rfc3339(float(result[0]))}  {result[1]}\n")
        return
    for i, item in enumerate(result):
        if i:
            out.write("\n")
        out.write(series_label(item.get("metric") or {}) + "\n")
        for t, v in _samples(item):
            out.write(f"  {rfc3339(float(t))}  {v}\n")


def write_csv(data: dict[str, Any], out: TextIO) -> None:
    """Long format: `time,<label…>,value`, time in unix seconds, one row per sample."""
    kind, result = data.get("resultType"), data.get("result") or []
    writer = csv.writer(out, lineterminator="\n")
    if kind in ("scalar", "string"):
        writer.writerow(["time", "value"])
        writer.writerow([result[0], result[1]])
        return
    labels = sorted({k for item in result for k in (item.get("metric") or {})}, key=lambda k: (k != "__name__", k))
    writer.writerow(["time", *labels, "value"])
    for item in result:
        metric = item.get("metric") or {}
        for t, v in _samples(item):
            writer.writerow([t, *(metric.get(k, "") for k in labels), v])


def metrics(args: argparse.Namespace) -> int:
    """`testbed metrics`: print the query's result; exit 0 (an empty result is said on stderr)."""
    with open_source(args) as source:
        if args.time_from is None and args.time_to is None and source.window is None:
            if args.step:
                raise stacks.CliError("--step is for a range query: give --from (and --to) too")
            data = source.api("/api/v1/query", {"query": args.query, "time": repr(source.now)})
            what = f"at {rfc3339(source.now)}"
        else:
            w = window(source, args.time_from, args.time_to, args.step, None)
            data = range_query(source, args.query, w)
            what = w.describe()
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif args.format == "csv":
        write_csv(data, sys.stdout)
    else:
        write_table(data, sys.stdout)
    if data.get("resultType") in ("matrix", "vector") and not data.get("result"):
        print(f"testbed: no data for `{args.query}` {what} ({source.label})", file=sys.stderr)
    return 0


# ---- parsers -------------------------------------------------------------------------------------


# `--from -10m`: argparse takes an argument starting with `-` for an option unless it looks like a
# negative number to the parser's (private, long-stable) matcher; relative times look like one here.
_NEGATIVE = re.compile(r"^-[0-9]+(\.[0-9]+)?((ms|s|m|h|d|w|y)([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w|y))*)?$")


def _source_options(p: argparse.ArgumentParser) -> None:
    p._negative_number_matcher = _NEGATIVE
    p.add_argument("--monitoring", "-m", metavar="NAME", help="the Monitoring resource, when the stack has several")
    p.add_argument(
        "--collector",
        metavar="HOST:PORT",
        help="instead of a Monitoring: a Prometheus on a host of the stack's reservation (its 127.0.0.1)",
    )
    p.add_argument(
        "--backup",
        "-b",
        metavar="DIR",
        help="instead of a stack: a MetricsBackup (a snapshot directory, a directory of them, or `<dest>/<stack>`)",
    )
    p.add_argument("--from", dest="time_from", metavar="TIME", help="start: RFC 3339, unix seconds, `now` or relative (`-10m`)")
    p.add_argument("--to", dest="time_to", metavar="TIME", help="end (default: now; for a backup, its end)")
    p.add_argument("--step", metavar="DURATION", help="resolution of a range query (`5s`, `1m`; default: ~250 points)")


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The `metrics` and `plot` subcommands (registered by cli/__init__.py; `args.handler` dispatches)."""
    m = sub.add_parser(
        "metrics",
        parents=[common],
        help="run a PromQL query on the stack's collector or a backup",
        description="Run a PromQL query on the stack's Monitoring collector (through an SSH tunnel), on a Prometheus "
        "of the reservation (--collector), or on a MetricsBackup (a temporary local Prometheus). Without --from/--to: "
        "an instant query now (live) or a range over the whole backup.",
    )
    _source_options(m)
    m.add_argument(
        "--query", "-q", required=True, metavar="PROMQL", help='e.g. `up` or `rate(node_network_receive_bytes_total{host="server-1"}[4s])`'
    )
    m.add_argument(
        "--format", "-f", choices=("table", "csv", "json"), default="table", help="table (default), CSV (long), or Prometheus' JSON data"
    )
    m.set_defaults(handler=metrics)

    p = sub.add_parser(
        "plot",
        parents=[common],
        help="draw a standard view (throughput, CPU, memory) or a query to PNG/SVG",
        description="Draw the metrics of the stack's collector or of a backup with matplotlib: `throughput` (bits/s "
        "received and sent per host and interface), `cpu` (busy %% per host), `memory` (used bytes per host), or any --query.",
    )
    _source_options(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--view", choices=("throughput", "cpu", "memory"), help="a standard view")
    what.add_argument("--query", "-q", metavar="PROMQL", help="any range query, one line per series")
    p.add_argument("--hosts", metavar="PATTERN", help="host names, comma-separated; `*`/`?` globs or `~regex` (default: all)")
    p.add_argument("--interfaces", metavar="LIST", help="throughput: interfaces, comma-separated, globs allowed (default: all but lo)")
    p.add_argument("--rate-window", metavar="DURATION", help="rate() window (default: max(4 scrapes, step + 1 scrape))")
    p.add_argument("--title", help="the figure's title")
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="FILE.png, FILE.svg or FILE.pdf")

    def run_plot(args: argparse.Namespace) -> int:
        from .plot import plot

        return plot(args)

    p.set_defaults(handler=run_plot)
