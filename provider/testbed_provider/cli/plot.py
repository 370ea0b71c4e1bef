"""`testbed plot`: the standard views (or any query) drawn by matplotlib, to PNG, SVG or PDF.

The expressions are services/queries.py's, the ones the Monitoring's `queries` output links to
in Prometheus' UI. Rates use a window of at least 4 scrapes and a step plus a scrape (Grafana's
`$__rate_interval`), so no point falls between two samples and none is left out. matplotlib is
imported here only, with the Agg backend: no display is needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..services import queries
from . import stacks
from .metrics import Source, Window, open_source, range_query, series_label, window
from .timeparse import parse_duration

FORMATS = ("png", "svg", "pdf")
_REGEX_SPECIALS = re.compile(r"([.^$+()\[\]{}|\\])")


def pattern_regex(text: str) -> str:
    """A comma-separated list of names, `*`/`?` globs or `~regex`es, as one RE2 alternation."""
    parts = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if item.startswith("~"):
            parts.append(item[1:])
        else:
            parts.append(_REGEX_SPECIALS.sub(r"\\\1", item).replace("*", ".*").replace("?", "."))
    if not parts:
        raise stacks.CliError(f"empty pattern `{text}`")
    return parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)


@dataclass(frozen=True)
class Panel:
    title: str
    query: str
    unit: str  # for the y axis' engineering formatter ("" for none)
    label: Callable[[dict[str, str]], str]  # a series' legend entry


def _host_device(m: dict[str, str]) -> str:
    return f"{m.get('host', m.get('instance', '?'))} {m.get('device', '')}".strip()


def _host(m: dict[str, str]) -> str:
    return m.get("host") or series_label(m)


def panels(args: argparse.Namespace, source: Source, w: Window) -> list[Panel]:
    host = pattern_regex(args.hosts) if args.hosts else None
    device = pattern_regex(args.interfaces) if args.interfaces else None
    if args.rate_window:
        try:
            rate = parse_duration(args.rate_window)
        except ValueError as err:
            raise stacks.CliError(f"--rate-window: {err}") from None
    else:
        rate = queries.rate_window(source.scrape_interval, w.step)
    if args.view == "throughput":
        return [
            Panel("received", queries.throughput("receive", rate, host, device), "bit/s", _host_device),
            Panel("sent", queries.throughput("transmit", rate, host, device), "bit/s", _host_device),
        ]
    if args.interfaces:
        raise stacks.CliError("--interfaces is for --view throughput")
    if args.view == "cpu":
        return [Panel("CPU busy", queries.cpu_busy(rate, host), "%", _host)]
    if args.view == "memory":
        return [Panel("memory used", queries.memory_used(host), "B", _host)]
    if args.hosts:
        raise stacks.CliError("--hosts is for the standard views: put a host matcher in the --query")
    return [Panel(args.query, args.query, "", series_label)]


def _output_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise stacks.CliError(f"--output {path}: the name must end in {', '.join('.' + f for f in FORMATS)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise stacks.CliError(f"--output {path}: no directory {parent}")
    return ext


def _draw(results: list[tuple[Panel, list[dict[str, Any]]]], title: str, path: str, fmt: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 3.6 * len(results) + 0.6), sharex=True, squeeze=False)
    try:
        for ax, (panel, series) in zip(axes[:, 0], results):
            for item in sorted(series, key=lambda i: panel.label(i.get("metric") or {})):
                points = [(dt.datetime.fromtimestamp(float(t), dt.timezone.utc), float(v)) for t, v in item.get("values") or []]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, label=panel.label(item.get("metric") or {}), linewidth=1.2)
            ax.set_title(panel.title if len(panel.title) <= 100 else panel.title[:97] + "…", fontsize=10)
            if panel.unit == "%":
                ax.set_ylim(0, 100)
                ax.set_ylabel("%")
            elif panel.unit:  # rates and sizes: from 0, in SI units (an idle link is a flat line at 0, not ±50 mbit/s)
                top = max((float(v) for item in series for _, v in item.get("values") or [] if math.isfinite(float(v))), default=0.0)
                ax.set_ylim(0, top * 1.08 if top > 0 else 1)
                ax.yaxis.set_major_formatter(EngFormatter(unit=panel.unit))
            ax.grid(True, alpha=0.3)
            if series:
                ax.legend(fontsize=8, loc="upper left", ncol=max(1, min(4, len(series) // 8 + 1)))
        bottom = axes[-1, 0]
        locator = mdates.AutoDateLocator()
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=dt.timezone.utc))
        bottom.set_xlabel("time (UTC)")
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        fig.savefig(path, format=fmt, dpi=100)
    finally:
        plt.close(fig)


def plot(args: argparse.Namespace) -> int:
    """Query every panel over the window, fail if none has data, draw, print where it went."""
    fmt = _output_format(args.output)
    with open_source(args) as source:
        w = window(source, args.time_from, args.time_to, args.step, None)
        wanted = panels(args, source, w)
        results = [(p, list(range_query(source, p.query, w).get("result") or [])) for p in wanted]
        label = source.label
        name = source.name or source.label
    if not any(series for _, series in results):
        asked = "; ".join(f"`{p.query}`" for p in wanted)
        raise stacks.CliError(f"no data for {asked} {w.describe()} ({label})")
    title = args.title or f"{args.view or 'query'} — {name}"
    _draw(results, title, args.output, fmt)
    print(f"wrote {args.output} ({sum(len(s) for _, s in results)} series {w.describe()})")
    return 0
