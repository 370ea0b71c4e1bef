"""iperf3 between two nodes: a `server` and a `client` on one experiment network.

The reservation part of the EnOSlib tutorial's first experiment; the stack's config picks the
testbed (`testbed:backend`), so the same program runs on another testbed with another stack.
"""

import pulumi
import pulumi_testbed as testbed

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=1),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

pulumi.export("hosts", nodes.hosts)
pulumi.export("roles", nodes.roles)
pulumi.export(
    "server_address",
    nodes.hosts.apply(lambda hosts: next(n.address for h in hosts if "server" in h.roles for n in h.networks if n.id == "experiment")),
)
