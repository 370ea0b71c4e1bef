"""`count` machines of `kind` (vm or host) on one experiment network and, with `delay`, a Netem
adding that delay from node-1 to node-2 (one way: the round trip asked is `delay`)."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["node"], count=config.get_int("count") or 1, kind=config.get("kind"))],
    networks=[testbed.NetworkArgs(id="experiment")],
)
delay = config.get("delay")
if delay:
    netem = testbed.services.Netem(
        "netem",
        inventory=nodes.inventory,
        network="experiment",
        constraints=[testbed.services.NetemConstraintArgs(src="node-1", dst="node-2", delay=delay)],
        accurate=config.get_bool("accurate"),
    )
    pulumi.export("validation", netem.validation)
pulumi.export("hosts", nodes.hosts.apply(len))
pulumi.export("address", nodes.addresses["experiment"]["node"].apply(lambda a: a[1] if len(a) > 1 else None))
