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


def measure(addr: str) -> str:
    """iperf3's client, retried while the server (just started in the background) is not yet
    listening or still busy with a previous connection; prints the last attempt's JSON and fails
    if none succeeded. (Probing the port with `nc -z` would itself occupy the server for a moment.)"""
    return (f"ok=1; for i in $(seq 50); do if iperf3 -c {addr} -t {duration} -J >/tmp/iperf3.json; then ok=0; break; fi; "
            f"sleep 0.2; done; cat /tmp/iperf3.json; exit $ok")


client = testbed.Command(
    "iperf3-client",
    inventory=nodes.inventory,
    on="client",
    create=server_address.apply(measure),
    opts=pulumi.ResourceOptions(depends_on=[server]),
)

report = client.stdout.apply(json.loads)
pulumi.export("bandwidth_gbps", report.apply(lambda r: round(r["end"]["sum_received"]["bits_per_second"] / 1e9, 3)))
pulumi.export("iperf3_report", client.stdout)
pulumi.export("server_address", server_address)
pulumi.export("roles", nodes.roles)
