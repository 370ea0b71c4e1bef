"""Three tiny VMs on a cluster's node (VMonG5k's way: the node count from the cluster's size, a
slash_22 subnet, DHCP by MAC) and one plain node, used by Commands like any hosts; the VMs
reach each other on `vms`, their network of subnet addresses."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(
            roles=["vm"], count=config.get_int("vms") or 3, kind=testbed.MachineKind.VM, flavour=testbed.Flavour.TINY, cluster="taurus"
        ),
        testbed.MachineGroupArgs(roles=["plain"], count=1, cluster="orion"),
    ],
    networks=[testbed.NetworkArgs(id="vms", roles=["vm"])],
)
who = testbed.Command("who", inventory=nodes.inventory, on="all", create="uname -r; hostname; cat /sys/class/net/eth0/address")
ping = testbed.Command(
    "ping",
    inventory=nodes.inventory,
    on="vm[0]",
    create="{% for h in groups['vm'][1:] %}ping -c 2 -W 5 {{ hostvars[h].testbed_networks.vms }} >/dev/null && echo {{ h }}; {% endfor %}",
)

# VMs are in no DNS: every host's /etc/hosts names the reservation's hosts
names = testbed.Command("names", inventory=nodes.inventory, on="all", create="getent hosts vm-3 | awk '{print $1}'")

pulumi.export("who", who.results)
pulumi.export("names", names.results)
pulumi.export("reached", ping.stdout)
pulumi.export("hosts", nodes.hosts)
pulumi.export("addresses", nodes.addresses)
