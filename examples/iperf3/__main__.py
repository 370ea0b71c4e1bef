"""iperf3 between two nodes, the first experiment of EnOSlib's tutorial: the client measures for
`duration` seconds (stack config, default 10) to the server's address on the experiment network.
Stacks: `local` (namespace hosts), `local-vm` (the same on QEMU VMs, `kind: vm`), `g5k`."""

import json

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
duration = config.get_int("duration") or 10
kind = config.get("kind")  # `vm` on the stack local-vm: the same experiment on QEMU VMs
nodes = testbed.Reservation("nodes",
    machines=[testbed.MachineGroupArgs(roles=["server"], count=1, kind=kind),
              testbed.MachineGroupArgs(roles=["client"], count=1, kind=kind)],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])])
server_ip = nodes.addresses["experiment"]["server"][0]

install = testbed.Command("install", inventory=nodes.inventory, on="all", create="dpkg -s iperf3 >/dev/null 2>&1 || "
    "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3)")
server = testbed.Command("iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s",
    background=True, ready_port=5201, opts=pulumi.ResourceOptions(depends_on=[install]))  # up once it listens
client = testbed.Command("iperf3-client", inventory=nodes.inventory, on="client",
    create="iperf3 -c {{ server_ip }} -t {{ duration }} -J", vars={"server_ip": server_ip, "duration": duration},
    opts=pulumi.ResourceOptions(depends_on=[server]))

report = client.stdout.apply(json.loads)
pulumi.export("bandwidth_gbps", report.apply(lambda r: round(r["end"]["sum_received"]["bits_per_second"] / 1e9, 3)))
pulumi.export("iperf3_report", client.stdout)
pulumi.export("server_address", server_ip)
pulumi.export("roles", nodes.roles)
