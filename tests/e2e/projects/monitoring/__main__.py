"""iperf3 between a server and `clients` clients (config, default 1) with monitoring: node-exporter
on every host, Prometheus on the server.

Config: `run` (any text) adds a measurement of `duration` seconds (default 5) by every client;
`backup` (any text) a MetricsBackup after it; `monitor: false` leaves monitoring out; `collector`,
`network`, `ui`, `port`, `labels` (JSON, the labels of an extra target), `extra` (an extra target's
`address:port`) and `blockPort` (a port something listens on on the server before monitoring
starts) are for the bad-input tests; `clientKind: vm` makes the clients VMs."""

import json

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
clients = config.get_int("clients") or 1

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=clients, kind=config.get("clientKind")),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

server = testbed.Command(
    "iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s -p 5201", background=True, ready_port=5201
)
before = [server]
block = config.get_int("blockPort")
if block:
    before.append(
        testbed.Command(
            "blocker",
            inventory=nodes.inventory,
            on="server",
            background=True,
            ready_port=block,
            create=f"exec python3 -m http.server --bind 0.0.0.0 {block}",
        )
    )

monitoring = None
if config.get_bool("monitor") is not False:
    extra = config.get("extra")
    monitoring = testbed.services.Monitoring(
        "monitoring",
        inventory=nodes.inventory,
        collector=config.get("collector") or "server",
        network=config.get("network"),
        ui=config.get("ui"),
        port=config.get_int("port"),
        scrape_interval=config.get_float("scrape") or 1.0,
        extra_targets=[testbed.services.ScrapeTargetArgs(job="app", targets=[extra], labels=json.loads(config.get("labels") or "{}"))]
        if extra
        else None,
        ready_timeout=config.get_float("readyTimeout"),
        opts=pulumi.ResourceOptions(depends_on=before),
    )
    pulumi.export(
        "monitoring",
        {
            "prometheus": monitoring.prometheus,
            "targets": monitoring.targets,
            "agents": monitoring.agent_hosts,
            "tunnel": monitoring.tunnel,
            "ui": monitoring.ui_urls,
            "queries": monitoring.queries,
        },
    )
pulumi.export("addresses", nodes.host_addresses)

run = config.get("run")
bench = None
if run:
    bench = testbed.Command(
        "bench",
        inventory=nodes.inventory,
        on="client",
        create="iperf3 -c {{ server }} -p 5201 -t {{ duration }} -J",
        vars={"server": nodes.addresses["experiment"]["server"][0], "duration": config.get_int("duration") or 5},
        triggers=[run],
        opts=pulumi.ResourceOptions(depends_on=[server] + ([monitoring] if monitoring else [])),
    )
    pulumi.export("bench", bench.results)

backup = config.get("backup")
if backup and monitoring:
    metrics = testbed.services.MetricsBackup(
        "metrics",
        inventory=nodes.inventory,
        prometheus=monitoring.prometheus,
        triggers=[backup],
        opts=pulumi.ResourceOptions(depends_on=[bench] if bench else []),
    )
    pulumi.export(
        "backup",
        {
            "directory": metrics.directory,
            "files": metrics.files,
            "bytes": metrics.total_bytes,
            "from": metrics.min_time,
            "to": metrics.max_time,
            "snapshot": metrics.snapshot,
        },
    )
