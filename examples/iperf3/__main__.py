"""iperf3 between two nodes: the first experiment of EnOSlib's tutorial, as one Pulumi program.

Reserve a `server` and a `client` on one experiment network, install iperf3 and tmux, start
`iperf3 -s` in the background on the server, run the client against the server's address on
that network for `duration` seconds (stack config, default 10) and export the bandwidth.
The stack's config picks the testbed (`testbed:backend`); the program is the same everywhere.
Changing `duration` re-runs only the client step.
"""

import json

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
duration = config.get_int("duration") or 10

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=1),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

install = testbed.Command(
    "install",
    inventory=nodes.inventory,
    on="all",
    create="dpkg -s iperf3 tmux >/dev/null 2>&1 || "
    "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 tmux)",
)

server = testbed.Command(
    "iperf3-server",
    inventory=nodes.inventory,
    on="server",
    create="iperf3 -s",
    background=True,  # outlives the step; destroy stops it
    opts=pulumi.ResourceOptions(depends_on=[install]),
)


def experiment_address(hosts, role: str) -> str:
    return next(n.address for h in hosts if role in h.roles for n in h.networks if n.id == "experiment")


server_address = nodes.hosts.apply(lambda hosts: experiment_address(hosts, "server"))

client = testbed.Command(
    "iperf3-client",
    inventory=nodes.inventory,
    on="client",
    # Wait for the server's port (it was just started in the background), then measure.
    create=server_address.apply(
        lambda addr: f"for i in $(seq 100); do nc -z {addr} 5201 && break; sleep 0.1; done; "
        f"iperf3 -c {addr} -t {duration} -J"
    ),
    opts=pulumi.ResourceOptions(depends_on=[server]),
)

report = client.stdout.apply(json.loads)
pulumi.export("bandwidth_gbps", report.apply(lambda r: round(r["end"]["sum_received"]["bits_per_second"] / 1e9, 3)))
pulumi.export("iperf3_report", client.stdout)
pulumi.export("server_address", server_address)
pulumi.export("roles", nodes.roles)
