"""A reservation of `count` servers (stack config, default 1): growing it changes its inventory."""

import pulumi
import pulumi_testbed as testbed

count = pulumi.Config().get_int("count") or 1
nodes = testbed.Reservation("nodes", machines=[testbed.MachineGroupArgs(roles=["server"], count=count)])
pulumi.export("roles", nodes.roles)
