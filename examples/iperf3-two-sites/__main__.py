"""iperf3 between two Grid'5000 sites over one KaVLAN network that spans both.

A `server` on one site and a `client` on another, reserved together (one OAR job per site,
one common start date), joined by an `experiment` network: a global KaVLAN that the nodes'
secondary interfaces are moved into. The client measures the bandwidth to the server's address
on that network. Sites and clusters come from stack config; the program is testbed-agnostic.
"""

import json

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
duration = config.get_int("duration") or 10


def group(role: str) -> testbed.MachineGroupArgs:
    return testbed.MachineGroupArgs(roles=[role], count=1, site=config.require(f"{role}Site"),
                                    cluster=config.get(f"{role}Cluster"), walltime=config.get("walltime"))


nodes = testbed.Reservation(
    "nodes",
    machines=[group("server"), group("client")],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

install = testbed.Command(
    "install", inventory=nodes.inventory, on="all",
    create="dpkg -s iperf3 >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3)",
)
server = testbed.Command("iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s", background=True,
                         opts=pulumi.ResourceOptions(depends_on=[install]))


def address_on(hosts, role: str, network: str) -> str:
    return next(n.address for h in hosts if role in h.roles for n in h.networks if n.id == network)


def measure(addr: str) -> str:
    """iperf3's client, retried while the server (just started in the background) is not yet
    listening or still busy with a previous connection; prints the last attempt's JSON and fails
    if none succeeded. (Probing the port with `nc -z` would itself occupy the server for a moment.)"""
    return (f"ok=1; for i in $(seq 50); do if iperf3 -c {addr} -t {duration} -J >/tmp/iperf3.json; then ok=0; break; fi; "
            f"sleep 0.2; done; cat /tmp/iperf3.json; exit $ok")


server_address = nodes.hosts.apply(lambda hosts: address_on(hosts, "server", "experiment"))
client = testbed.Command(
    "iperf3-client", inventory=nodes.inventory, on="client",
    create=server_address.apply(measure),
    opts=pulumi.ResourceOptions(depends_on=[server]),
)

report = client.stdout.apply(json.loads)
pulumi.export("bandwidth_gbps", report.apply(lambda r: round(r["end"]["sum_received"]["bits_per_second"] / 1e9, 3)))
pulumi.export("server_address", server_address)
pulumi.export("sites", nodes.hosts.apply(lambda hosts: {h.name: h.roles for h in hosts}))
