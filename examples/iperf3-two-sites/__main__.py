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


def group(role: str) -> testbed.MachineGroupArgs:
    return testbed.MachineGroupArgs(roles=[role], count=1, site=config.require(f"{role}Site"),
                                    cluster=config.get(f"{role}Cluster"), walltime=config.get("walltime"))


nodes = testbed.Reservation("nodes", machines=[group("server"), group("client")],
                            networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])])
install = testbed.Command("install", inventory=nodes.inventory, on="all", create="dpkg -s iperf3 >/dev/null 2>&1 || "
                          "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3)")
server = testbed.Command("iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s", background=True,
                         ready_port=5201, opts=pulumi.ResourceOptions(depends_on=[install]))
# Each client renders its own command: the server's address on the experiment network, from the inventory.
client = testbed.Command("iperf3-client", inventory=nodes.inventory, on="client",
                         create="iperf3 -c {{ hostvars[groups['server'][0]].testbed_networks.experiment }} -t {{ duration }} -J",
                         vars={"duration": config.get_int("duration") or 10}, opts=pulumi.ResourceOptions(depends_on=[server]))

report = client.stdout.apply(json.loads)
pulumi.export("bandwidth_gbps", report.apply(lambda r: round(r["end"]["sum_received"]["bits_per_second"] / 1e9, 3)))
pulumi.export("server_address", nodes.addresses["experiment"]["server"][0])
pulumi.export("sites", nodes.hosts.apply(lambda hosts: {h.name: h.roles for h in hosts}))
