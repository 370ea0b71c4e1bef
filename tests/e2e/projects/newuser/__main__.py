"""What a new user tries first: a Reservation of servers and a client and one step on a pattern,
with the values a user could get wrong taken from the stack config as they are written."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
servers = config.get("servers") or "1"
extra = {"name": config.get("name")} if config.get("name") else {}
if config.get("cidr"):
    extra["networks"] = [testbed.NetworkArgs(id="experiment", cidr=config.get("cidr"))]
nodes = testbed.Reservation(
    config.get("resource") or "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=int(servers) if servers.lstrip("-").isdigit() else servers),
        testbed.MachineGroupArgs(roles=["client"], count=1),
    ],
    **extra,
)
hello = testbed.Command("hello", inventory=nodes.inventory, on=config.get("on") or "all", create="hostname")

pulumi.export("roles", nodes.roles)
