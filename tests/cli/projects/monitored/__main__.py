"""A server and a client on one network, a Monitoring (agents on both, the collector on the
server) and iperf3 streaming client -> server in the background: what `testbed ui` reads traffic
from without `--collector`."""

import pulumi
import pulumi_testbed as testbed

nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["server"], count=1), testbed.MachineGroupArgs(roles=["client"], count=1)],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)
monitoring = testbed.services.Monitoring("monitoring", inventory=nodes.inventory, collector="server")
server = testbed.Command(
    "iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s -p 5302", background=True, ready_port=5302
)
testbed.Command(
    "iperf3-client",
    inventory=nodes.inventory,
    on="client",
    create="iperf3 -c {{ server }} -p 5302 -t 3600 -b 20M",
    vars={"server": nodes.addresses["experiment"]["server"][0]},
    background=True,
    opts=pulumi.ResourceOptions(depends_on=[server]),
)
pulumi.export("tunnel", monitoring.tunnel)
pulumi.export("receive", monitoring.queries.apply(lambda q: q["receive"].url))
