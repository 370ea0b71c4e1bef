"""A server and a client on an experiment network, constrained by a Netem.

Config: `model` (`pair`: a constraint from the client to the server, the default; `star`: the
server's interface, `symmetric` through an ifb), `delay`, `rate`, `loss` (of that constraint; none
set: a rate of 20mbit), `symmetric` (true/false), `foreign` (a root qdisc put on the client's
experiment interface by a Command first: the Netem must refuse it), `netem: false` leaves the
Netem out, `triggers` (re-measure)."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["server"], count=1), testbed.MachineGroupArgs(roles=["client"], count=1)],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)
pulumi.export("hosts", nodes.hosts)

before = []
if config.get_bool("foreign"):
    before.append(
        testbed.Command(
            "foreign",
            inventory=nodes.inventory,
            on="client",
            create="/sbin/tc qdisc add dev eth1 root handle 5: tbf rate 1gbit burst 64k latency 50ms",
            delete="/sbin/tc qdisc del dev eth1 root handle 5: || true",
        )
    )

shape = {k: config.get(k) for k in ("delay", "rate", "loss")}
if not any(shape.values()):
    shape["rate"] = "20mbit"
symmetric = config.get_bool("symmetric") or False
if config.get_bool("netem") is not False:
    if (config.get("model") or "pair") == "star":
        netem = testbed.services.Netem(
            "netem",
            inventory=nodes.inventory,
            hosts=[testbed.services.NetemHostConstraintArgs(on="server", symmetric=symmetric, **shape)],
            triggers=[config.get("triggers") or ""],
            opts=pulumi.ResourceOptions(depends_on=before),
        )
    else:
        netem = testbed.services.Netem(
            "netem",
            inventory=nodes.inventory,
            network="experiment",
            constraints=[testbed.services.NetemConstraintArgs(src="client", dst="server", symmetric=symmetric, **shape)],
            triggers=[config.get("triggers") or ""],
            opts=pulumi.ResourceOptions(depends_on=before),
        )
    pulumi.export("applied", netem.applied)
    pulumi.export("validation", netem.validation)
