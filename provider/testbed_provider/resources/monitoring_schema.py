"""Typed definition of testbed:services:Monitoring: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..services.prometheus import DEFAULT_COLLECTORS
from ..typed.model import Resource, prop, schema_type
from .steps_schema import PATTERN, PATTERN_HINT, SECONDS_HINT, InventoryArgs

DURATION = r"([0-9]+(ms|s|m|h|d|w|y))+"  # a Prometheus duration: 15d, 12h, 1h30m
DURATION_HINT = "a Prometheus duration such as `15d`, `12h` or `1h30m`"
SSH_NETWORK = "_ssh"


@schema_type("testbed:services:ScrapeTarget", "Extra endpoints the collector scrapes besides its agents.", label="a scrape target")
@dataclass(kw_only=True)
class ScrapeTarget:
    job: str = prop(
        "Prometheus job name of these endpoints.",
        pattern=r"[A-Za-z_][A-Za-z0-9_.-]*",
        hint="a job name: a letter or `_`, then letters, digits, `_`, `.` or `-`",
    )
    targets: list[str] = prop(
        "`address:port` endpoints, reached from the collector.",
        min_items=1,
        noun="`address:port` endpoint",
        pattern=r"[^\s:/]+:[0-9]{1,5}",
        hint="an `address:port` endpoint",
    )
    metrics_path: Optional[str] = prop("HTTP path of the metrics. Default: `/metrics`.", pattern=r"/\S*", hint="a path starting with `/`")
    labels: Optional[dict[str, str]] = prop("Labels added to every series of these endpoints.")


@schema_type("testbed:services:Collector", "Where the metrics are: the collector's host, address and data.")
@dataclass(kw_only=True)
class Collector:
    host: str = prop("Inventory name of the collector host.")
    address: str = prop("The collector's address on the monitoring network.")
    port: int = prop("Port of Prometheus' HTTP API and web UI on the collector.")
    url: str = prop("Prometheus' URL as the hosts reach it (`http://address:port`).")
    data_dir: str = prop("Prometheus' data directory on the collector (its TSDB; snapshots go to `snapshots/` inside).")
    scrape_interval: float = prop("Seconds between two scrapes.")


@schema_type("testbed:services:AgentTarget", "One scraped endpoint and its health, as the collector last saw it.")
@dataclass(kw_only=True)
class AgentTarget:
    host: str = prop("Inventory host name (the `host` label of its series).")
    job: str = prop("Prometheus job: `node` for the agents, `prometheus` for the collector itself, or an extra target's.")
    endpoint: str = prop("`address:port` the collector scrapes.")
    health: str = prop("up, down or unknown (Prometheus' own word).")
    last_error: Optional[str] = prop("The last scrape error, when there was one.")


@schema_type("testbed:services:Query", "A ready-made PromQL query and a link graphing it in Prometheus' UI.")
@dataclass(kw_only=True)
class Query:
    expr: str = prop("The PromQL expression.")
    url: str = prop("Prometheus' graph page for it, through the tunnel the `tunnel` output names.")
    description: str = prop("What it shows.")


# testbed:services:Monitoring
@dataclass(kw_only=True)
class MonitoringArgs(InventoryArgs):
    collector: str = prop(
        "Host pattern matching exactly one host: it runs Prometheus, which scrapes the agents and keeps the metrics.",
        pattern=PATTERN,
        hint=PATTERN_HINT,
    )
    agents: str = prop(
        "Host pattern of the hosts running an agent (prometheus-node-exporter: network, CPU, memory, disk counters).",
        default="all",
        fill=True,
        pattern=PATTERN,
        hint=PATTERN_HINT,
    )
    ui: Optional[str] = prop(
        "Host pattern matching exactly one host serving the UI (Prometheus' web UI and API). On another host than the "
        "collector, a small forwarder there passes the UI port to the collector. Default: the collector.",
        pattern=PATTERN,
        hint=PATTERN_HINT,
    )
    network: Optional[str] = prop(
        "Network the agents are scraped over: a network id of the Reservation, or `_ssh` (the network SSH uses: the local "
        "testbed's management network, Grid'5000's production network). Agents listen on that network's address only, so "
        "monitoring traffic stays off the experiment networks. Default: `_ssh`.",
        hint="a network id of the Reservation, or `_ssh`",
    )
    scrape_interval: float = prop(
        "Seconds between two scrapes of every target (experiments are short: the default is 1 s).",
        default=1.0,
        minimum=0.1,
        maximum=3600,
        hint="a number of seconds between 0.1 and 3600",
    )
    retention: str = prop(
        "How long Prometheus keeps the metrics (`--storage.tsdb.retention.time`).", default="15d", pattern=DURATION, hint=DURATION_HINT
    )
    port: int = prop("Port of Prometheus' web UI and API on the collector (and the UI host).", default=9090, minimum=1, maximum=65535)
    agent_port: int = prop("Port the agents listen on.", default=9100, minimum=1, maximum=65535)
    agent_collectors: Optional[list[str]] = prop(
        "node-exporter collectors the agents run (`--collector.<name>`; the others are off, so a 1 s scrape stays cheap). "
        "Default: " + ", ".join(f"`{c}`" for c in DEFAULT_COLLECTORS) + ".",
        min_items=1,
        noun="collector name",
        pattern=r"[a-z][a-z0-9_]*",
        hint="a node-exporter collector name such as `netdev`",
    )
    extra_targets: Optional[list[ScrapeTarget]] = prop("More endpoints to scrape (e.g. an application's own `/metrics`).")
    become: Optional[bool] = prop("Install and run as root through sudo when the login user is not root.")
    ready_timeout: float = prop(
        "Seconds to wait for Prometheus to be ready and every agent to be scraped healthy once.",
        default=60.0,
        minimum=1,
        hint="a number of seconds ≥ 1",
    )


@dataclass(kw_only=True)
class MonitoringState(MonitoringArgs):
    prometheus: Collector = prop("The collector's Prometheus: host, address, port, URL, data directory, scrape interval.", output=True)
    targets: list[AgentTarget] = prop("Every scraped endpoint and its health when `pulumi up` (or refresh) last looked.", output=True)
    agent_hosts: list[str] = prop("Hosts running an agent.", output=True)
    tunnel: str = prop(
        "The command forwarding Prometheus' UI to your machine over the reservation's SSH (run it in the project "
        "directory); the `uiUrls` and query links then open in a browser.",
        output=True,
    )
    ui_urls: dict[str, str] = prop(
        "`prometheus` (the UI through the tunnel), `targets` (its target page), `onHosts` (the UI as the hosts reach it).", output=True
    )
    grafana_dashboard: str = prop(
        "A Grafana dashboard of the same views (JSON, built with grafana-foundation-sdk), for a Grafana you run "
        "elsewhere: import it and pick a Prometheus data source reaching the collector.",
        output=True,
    )
    queries: dict[str, Query] = prop(
        "Ready-made queries: `throughput` (bits/s per host and interface, both directions), `receive`, `transmit`, `cpu` "
        "(busy % per host), `memory` (used bytes per host).",
        output=True,
    )


MONITORING = Resource(
    "testbed:services:Monitoring",
    "A monitoring stack beside the experiment (EnOSlib's TPGMonitoring, without Docker or Grafana): "
    "prometheus-node-exporter on the agents and Prometheus (with its admin API, for snapshots) on the collector, "
    "installed from the hosts' Debian packages when missing and run in the background (no systemd needed). Preview "
    "installs nothing; an unchanged program re-runs nothing; a host added to the reservation gets its agent and the "
    "collector reloads its targets (no restart); destroy stops everything it started and removes what it wrote, the "
    "metrics included (back them up first with a MetricsBackup).",
    MonitoringArgs,
    MonitoringState,
    label="Monitoring",
    example="""import pulumi_testbed as testbed

monitoring = testbed.services.Monitoring(
    "monitoring",
    inventory=nodes.inventory,
    collector="server",
    agents="all",
)
pulumi.export("tunnel", monitoring.tunnel)  # testbed tunnel --stack local server-1:9090
pulumi.export("ui", monitoring.ui_urls["prometheus"])
""",
)


@schema_type("testbed:services:BackupFile", "One file of a metrics backup.")
@dataclass(kw_only=True)
class BackupFile:
    path: str = prop("Local path, relative to the backup's `directory`.")
    size: int = prop("Bytes.")
    sha256: str = prop("SHA-256 of the content (hex), checked on the collector and here.")


# testbed:services:MetricsBackup
@dataclass(kw_only=True)
class MetricsBackupArgs(InventoryArgs):
    prometheus: Collector = prop(
        "A Monitoring's `prometheus` output: which collector to snapshot.", hint="a Monitoring's `prometheus` output"
    )
    destination: str = prop(
        "Local directory, relative to the Pulumi program: the snapshot lands in `<destination>/<stack>/metrics/<snapshot>/`.",
        default="backups",
        pattern=r"\s*\S[\s\S]*",
        hint='a local directory (relative to the Pulumi program), e.g. "backups"',
    )
    triggers: Optional[list[Any]] = prop("Any values: a change takes and fetches a new snapshot (the old ones stay).")
    timeout: Optional[float] = prop(
        "Seconds before the snapshot's transfer is stopped and reported (0 or omitted: no limit).", minimum=0, hint=SECONDS_HINT
    )
    delete_on_destroy: Optional[bool] = prop(
        "Remove the fetched snapshot (exactly its recorded files) on destroy. Default false: backups are kept."
    )


@dataclass(kw_only=True)
class MetricsBackupState(MetricsBackupArgs):
    snapshot: str = prop("The snapshot's name (Prometheus' `<time>-<random>`).", output=True)
    directory: str = prop(
        "Local directory holding the snapshot (a Prometheus TSDB: `prometheus --storage.tsdb.path=<it>`, or "
        "`testbed metrics --backup <it>`) and its `backup.json`.",
        output=True,
    )
    files: list[BackupFile] = prop("Every file of the snapshot, with size and sha256.", output=True)
    total_files: int = prop("Files fetched.", output=True)
    total_bytes: int = prop("Bytes fetched.", output=True)
    min_time: str = prop("Oldest sample in the snapshot (RFC 3339, UTC).", output=True)
    max_time: str = prop("Newest sample in the snapshot (RFC 3339, UTC).", output=True)
    taken_at: str = prop("When the snapshot was taken (RFC 3339, UTC).", output=True)


METRICS_BACKUP = Resource(
    "testbed:services:MetricsBackup",
    "A backup of a Monitoring's metrics (EnOSlib's `backup()`, online): an online TSDB snapshot taken through "
    "Prometheus' admin API, fetched with sha256 checksums (checked on both sides) into "
    "`<destination>/<stack>/metrics/<snapshot>/`, then removed from the collector. Preview takes nothing; a change of "
    "`triggers` (or of the collector) takes a new one. The snapshot is a Prometheus data directory: "
    "`testbed metrics --backup` and `testbed plot --backup` read it offline.",
    MetricsBackupArgs,
    MetricsBackupState,
    label="MetricsBackup",
    example="""backup = testbed.services.MetricsBackup(
    "metrics",
    inventory=nodes.inventory,
    prometheus=monitoring.prometheus,
    triggers=[run_id],
)
pulumi.export("metrics", backup.directory)
""",
)
