"""A server and a client on one network, nothing run on them: the Reservation's own lifecycle."""

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
