"""A namespace host and a VM constrained by a Netem (a delay, which needs the VM's own kernel),
a Play on the VM, and a Fetch from it."""

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
write = testbed.Command(
    "write",
    inventory=nodes.inventory,
    on="client",
    create="mkdir -p /root/out && head -c 300000 /dev/urandom > /root/out/blob && sha256sum /root/out/blob",
)
fetched = testbed.Fetch(
    "fetch",
    inventory=nodes.inventory,
    on="client",
    paths=["/root/out/blob"],
    destination="results",
    opts=pulumi.ResourceOptions(depends_on=[write]),
)
pulumi.export("validation", netem.validation)
pulumi.export("written", write.stdout)
pulumi.export("fetched", fetched.files)
pulumi.export("registered", play.registered)
