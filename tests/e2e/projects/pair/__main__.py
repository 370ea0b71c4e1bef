"""A reservation in the state before a second one's create begins: with it there, a refresh or
destroy loads (and configures) the provider, whatever happened to the second."""

import pulumi
import pulumi_testbed as testbed

first = testbed.Reservation("first", machines=[testbed.MachineGroupArgs(roles=["a"], count=1)])
second = testbed.Reservation(
    "second",
    machines=[testbed.MachineGroupArgs(roles=["server"], count=1), testbed.MachineGroupArgs(roles=["client"], count=1)],
    opts=pulumi.ResourceOptions(depends_on=[first]),
)
pulumi.export("first", first.roles)
