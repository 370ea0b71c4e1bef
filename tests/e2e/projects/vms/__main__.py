"""A namespace host and a group of VMs (kind `vm`) on one experiment network, used by Commands
like any hosts; beside them, a second reservation of namespace hosts only."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
vms = config.get_int("vms") or 1

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["vm"], count=vms, kind=testbed.MachineKind.VM, flavour=testbed.Flavour.TINY),
    ],
    networks=[testbed.NetworkArgs(id="experiment")],
)
plain = testbed.Reservation("plain", machines=[testbed.MachineGroupArgs(roles=["other"], count=1)])

kernels = testbed.Command("kernels", inventory=nodes.inventory, on="all", create="uname -r")
ping = testbed.Command(
    "ping",
    inventory=nodes.inventory,
    on="vm",
    create="ping -c 3 -W 5 {{ hostvars[groups['server'][0]].testbed_networks.experiment }}",
)
netem = testbed.Command(
    "netem",
    inventory=nodes.inventory,
    on="vm",
    # re-run on every VM when one is repaired: the old qdisc goes first
    create="/sbin/tc qdisc del dev eth1 root 2>/dev/null; /sbin/tc qdisc add dev eth1 root netem delay 50ms && /sbin/tc qdisc show dev eth1",
    delete="/sbin/tc qdisc del dev eth1 root",
    opts=pulumi.ResourceOptions(depends_on=[ping]),
)
delayed = testbed.Command(
    "delayed",
    inventory=nodes.inventory,
    on="server",
    create="{% for h in groups['vm'] %}ping -c 3 -W 5 {{ hostvars[h].testbed_networks.experiment }}; {% endfor %}",
    opts=pulumi.ResourceOptions(depends_on=[netem]),
)
other = testbed.Command("other", inventory=plain.inventory, on="all", create="uname -r")

pulumi.export("kernels", kernels.results)
pulumi.export("ping", ping.results)
pulumi.export("netem", netem.results)
pulumi.export("delayed", delayed.stdout)
pulumi.export("other", other.stdout)
pulumi.export("hosts", nodes.hosts)
pulumi.export("key", nodes.ssh_private_key)
