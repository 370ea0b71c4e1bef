"""myperf's infrastructure and steps; `myperf.py` drives it (up, bench, backup, destroy).

A server and `clients` clients (stack config, default 1) on one experiment network; a Play
installs iperf3 and prepares the results directory; one `iperf3 -s` per client runs in the
background on the server, each step done once its server listens. The stack config
`myperf:bench` (set by `myperf bench`: run id, duration, extra iperf3 client options) adds the
measurement step: every client runs iperf3 against its own server on the experiment network
(one command, rendered per client) and keeps its JSON report in /root/results/<id>.json; its
results say when each client measured (the run's time window). Monitoring runs beside it all
along (the tutorial's section 4.2): node-exporter on every host, Prometheus on the server, scraped
over the management network so the experiment network carries only iperf3. The config
`myperf:backup` (set by `myperf backup`) adds a Fetch of every client's results into
`backups/<stack>/<host>/` and a MetricsBackup of the collector into `backups/<stack>/metrics/`.
"""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
clients = config.get_int("clients") or 1
stack = pulumi.get_stack()

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=clients),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

deps = testbed.Play(
    "deps",
    inventory=nodes.inventory,
    tasks=[
        {"name": "iperf3", "ansible.builtin.shell": "dpkg -s iperf3 >/dev/null 2>&1 && echo present || "
         "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 && echo installed)",
         "register": "iperf3", "changed_when": "'installed' in iperf3.stdout"},
        {"name": "results directory", "ansible.builtin.file": {"path": "/root/results", "state": "directory"}},
    ],
)

# One iperf3 server per client (ports 5201…), so clients measure at once.
servers = [
    testbed.Command(
        f"iperf3-server-{k}",
        inventory=nodes.inventory,
        on="server",
        create=f"iperf3 -s -p {5200 + k}",
        background=True,
        ready_port=5200 + k,  # the step is done once it listens: the measurement never races it
        opts=pulumi.ResourceOptions(depends_on=[deps]),
    )
    for k in range(1, clients + 1)
]

monitoring = testbed.services.Monitoring("monitoring", inventory=nodes.inventory, collector="server")

pulumi.export("roles", nodes.roles)
pulumi.export("monitoring", {"tunnel": monitoring.tunnel, "ui": monitoring.ui_urls["prometheus"]})
pulumi.export("experiment_interfaces", nodes.hosts.apply(
    lambda hosts: {h.name: n.interface for h in hosts for n in h.networks if n.id == "experiment"}))
server_address = nodes.addresses["experiment"]["server"][0]
pulumi.export("server_address", server_address)

bench = config.get_object("bench")
if bench:
    run, duration, extra = bench["id"], int(bench.get("duration", 10)), str(bench.get("args", ""))
    # Client k of the `client` group talks to the server's port 5200 + k (each client renders its
    # own command; host names differ per testbed). It prints the received Gbit/s; a report with
    # an error fails the step.
    measure = testbed.Command(
        "bench",
        inventory=nodes.inventory,
        on="client",
        create="iperf3 -c {{ server }} -p {{ 5201 + groups['client'].index(inventory_hostname) }} -t {{ duration }} {{ args }} "
               "-J >{{ out }}; python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); e=r.get(\"end\", {}).get(\"sum_received\"); "
               "print(round(e[\"bits_per_second\"]/1e9, 3)) if e and not r.get(\"error\") else sys.exit(r.get(\"error\", \"no result\"))' {{ out }}",
        vars={"server": server_address, "duration": duration, "args": extra, "out": f"/root/results/{run}.json"},
        triggers=[run],
        opts=pulumi.ResourceOptions(depends_on=[*servers, monitoring]),
    )
    pulumi.export("bench", {"id": run, "duration": duration, "args": extra,
                            "gbps": measure.results.apply(lambda rs: {r.host: r.stdout for r in rs}),
                            "windows": measure.results.apply(lambda rs: {r.host: [r.started_at, r.duration_s] for r in rs})})

backup = config.get("backup")
if backup:
    fetched = testbed.Fetch(
        "backup",
        inventory=nodes.inventory,
        on="client",
        paths=["/root/results"],
        destination=f"backups/{stack}",
        triggers=[backup],
        opts=pulumi.ResourceOptions(depends_on=servers),
    )
    metrics = testbed.services.MetricsBackup(
        "metrics",
        inventory=nodes.inventory,
        prometheus=monitoring.prometheus,
        triggers=[backup],
        opts=pulumi.ResourceOptions(depends_on=servers),
    )
    pulumi.export("backup", {
        "directory": fetched.destination,
        "files": fetched.files.apply(lambda fs: [{"host": f.host, "path": f.path, "size": f.size, "sha256": f.sha256} for f in fs]),
        "metrics": metrics.directory,
        "metricsBytes": metrics.total_bytes,
    })
