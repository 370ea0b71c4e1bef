"""A server and a client on one network, made by the local backend in a stack of their own: to
the static backend's stack under test they are machines that already exist."""

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
pulumi.export("ssh", nodes.ssh)
pulumi.export("key", nodes.ssh_private_key)
