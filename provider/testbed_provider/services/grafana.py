"""A Grafana dashboard of the standard views, for users who have Grafana elsewhere.

Grafana cannot run here (not in Debian; its own modules are AGPL), so the Monitoring resource
ships no Grafana, only this dashboard as JSON (its `grafanaDashboard` output: import it with a
Prometheus data source pointing at the collector, e.g. through `testbed tunnel`). It is built
with Grafana's own typed builders (grafana-foundation-sdk), not written by hand, from the same
PromQL as `testbed plot` and the `queries` output (services.queries), with Grafana's
`$__rate_interval` as the rate window and a `host` variable over the agents.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement, SortOrder, TooltipDisplayMode
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef, GridPos, VariableRefresh

from . import queries as q

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
HOSTS = "$host"  # the variable's regex (multi-valued, `All` by default)


def _panel(title: str, unit: str, exprs: list[tuple[str, str]], x: int, y: int) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).grid_pos(GridPos(h=8, w=12, x=x, y=y))
    legend = common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE).placement(LegendPlacement.BOTTOM).show_legend(True)
    panel = panel.legend(legend.calcs(["mean", "max"])).tooltip(
        common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)
    )
    for k, (expr, label) in enumerate(exprs):
        panel = panel.with_target(prometheus.Dataquery().ref_id(chr(ord("A") + k)).expr(expr).legend_format(label).range())
    return panel


def _rated(expr: str) -> str:
    """services.queries' expressions take whole seconds; Grafana picks its own window."""
    return expr.replace("[1s]", f"[{RATE}]")


def dashboard_json(title: str, scrape_interval_s: float) -> str:
    """The dashboard, as the JSON Grafana imports."""
    host = dashboard.QueryVariable("host").label("host").datasource(DATASOURCE)
    host = host.query('label_values(node_uname_info{job="node"}, host)').multi(True).include_all(True)
    host = host.all_value(".*").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
    board = (
        dashboard.Dashboard(title)
        .uid("testbed-" + "".join(c if c.isalnum() else "-" for c in title.lower())[:30])
        .tags(["pulumi-testbed", "node-exporter"])
        .refresh("5s")
        .time("now-15m", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(host)
        .with_panel(
            _panel(
                "Received per host and interface",
                "bps",
                [(_rated(q.throughput("receive", 1, host=HOSTS)), "{{host}} {{device}}")],
                0,
                0,
            )
        )
        .with_panel(
            _panel("Sent per host and interface", "bps", [(_rated(q.throughput("transmit", 1, host=HOSTS)), "{{host}} {{device}}")], 12, 0)
        )
        .with_panel(_panel("CPU busy", "percent", [(_rated(q.cpu_busy(1, host=HOSTS)), "{{host}}")], 0, 8))
        .with_panel(_panel("Memory used", "bytes", [(q.memory_used(host=HOSTS), "{{host}}")], 12, 8))
    )
    built: Any = board.build()
    built.description = f"Standard views of a pulumi-testbed Monitoring (node-exporter every {scrape_interval_s:g} s)."
    return json.dumps(json.loads(JSONEncoder(sort_keys=True, indent=None).encode(built)), sort_keys=True)
