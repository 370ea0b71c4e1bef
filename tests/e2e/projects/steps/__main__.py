"""A server and two clients, and Command steps whose behaviour the stack config switches."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["server"], count=1), testbed.MachineGroupArgs(roles=["client"], count=2)],
)

greet = testbed.Command(
    "greet",
    inventory=nodes.inventory,
    on="server",
    create='echo "$MESSAGE from $(hostname)"',
    environment={"MESSAGE": config.get("message") or "hello"},
    triggers=[config.get("trigger") or "0"],
)
everyone = testbed.Command("everyone", inventory=nodes.inventory, on="all", create="hostname")

marker = config.get("marker")
if marker:
    testbed.Command("marked", inventory=nodes.inventory, on="server", create="true", delete=f"echo deleted-from-$(hostname) > {marker}")

if config.get_bool("failing"):
    testbed.Command("failing", inventory=nodes.inventory, on="client", create="echo boom-$(hostname) >&2; exit 3")

pulumi.export("greeting", greet.stdout)
pulumi.export("everyone", everyone.results.apply(lambda rs: {r.host: r.stdout for r in rs}))
