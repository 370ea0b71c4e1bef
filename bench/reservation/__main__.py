"""`count` hosts with one experiment network: what bench/skeleton.py brings up and times."""

import pulumi
import pulumi_testbed as testbed

count = pulumi.Config().get_int("count") or 2
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["node"], count=count)],
    networks=[testbed.NetworkArgs(id="experiment")],
)
pulumi.export("hosts", nodes.hosts.apply(len))
