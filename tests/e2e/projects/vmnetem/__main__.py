"""A namespace host and a VM constrained by a Netem (a delay, which needs the VM's own kernel),
and a Play on the VM."""

import pulumi
import pulumi_testbed as testbed

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=1, kind=testbed.MachineKind.VM),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)
netem = testbed.services.Netem(
    "netem",
    inventory=nodes.inventory,
    network="experiment",
    constraints=[testbed.services.NetemConstraintArgs(src="client", dst="server", delay="20ms")],
)
play = testbed.Play("play", inventory=nodes.inventory, on="client", tasks=[{"ansible.builtin.command": "uname -r", "register": "k"}])
pulumi.export("validation", netem.validation)
pulumi.export("registered", play.registered)
