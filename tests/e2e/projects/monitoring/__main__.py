"""iperf3 between a server and `clients` clients (config, default 1) with monitoring: node-exporter
on every host, Prometheus on the server. Config `run` (any text) adds a measurement of
`duration` seconds (default 5) by every client; `scrape` sets the scrape interval."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
clients = config.get_int("clients") or 1

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=clients),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

monitoring = testbed.services.Monitoring(
    "monitoring",
    inventory=nodes.inventory,
    collector="server",
    scrape_interval=config.get_float("scrape") or 1.0,
)

server = testbed.Command(
    "iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s -p 5201", background=True, ready_port=5201
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
if run:
    bench = testbed.Command(
        "bench",
        inventory=nodes.inventory,
        on="client",
        create="iperf3 -c {{ server }} -p 5201 -t {{ duration }} -J",
        vars={"server": nodes.addresses["experiment"]["server"][0], "duration": config.get_int("duration") or 5},
        triggers=[run],
        opts=pulumi.ResourceOptions(depends_on=[server, monitoring]),
    )
    pulumi.export("bench", bench.results)

backup = config.get("backup")
if backup:
    metrics = testbed.services.MetricsBackup(
        "metrics",
        inventory=nodes.inventory,
        prometheus=monitoring.prometheus,
        triggers=[backup],
        opts=pulumi.ResourceOptions(depends_on=[bench] if run else []),
    )
    pulumi.export("backup", {"directory": metrics.directory, "files": metrics.total_files, "bytes": metrics.total_bytes,
                             "from": metrics.min_time, "to": metrics.max_time})
