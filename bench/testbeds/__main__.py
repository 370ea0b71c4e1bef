"""`count` machines of `kind` on one experiment network, and one command on all of them: the
same program on every testbed bench/testbeds.py compares."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["node"], count=config.get_int("count") or 2, kind=config.get("kind"))],
    networks=[testbed.NetworkArgs(id="experiment")],
)
hostname = testbed.Command("hostname", inventory=nodes.inventory, on="all", create="hostname")
pulumi.export("hosts", nodes.hosts.apply(len))
pulumi.export("ran", hostname.results.apply(len))
