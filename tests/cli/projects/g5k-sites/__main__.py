"""A server at lyon and a client at nancy on one network (a kavlan-global vlan spanning both
sites), and a second reservation of one lyon node on a network of its own (a routed kavlan):
what `testbed topology` must tell apart. Nothing runs on the hosts."""

import pulumi_testbed as testbed

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1, site="lyon", cluster="taurus"),
        testbed.MachineGroupArgs(roles=["client"], count=1, site="nancy", cluster="grisou"),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)
edge = testbed.Reservation(
    "edge",
    machines=[testbed.MachineGroupArgs(roles=["edge"], count=1, site="lyon", cluster="taurus")],
    networks=[testbed.NetworkArgs(id="lan")],
)
