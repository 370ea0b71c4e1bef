"""100 nodes on three Grid'5000 sites with one common start: what bench/g5k.py previews and brings up.

Config `layout` = `site:cluster:count,…` (default 20 on lyon/nova, 45 on nancy/grisou,
35 on rennes/paravance), `network` = true adds one KaVLAN experiment network per site group.
"""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
layout = config.get("layout") or "lyon:nova:20,nancy:grisou:45,rennes:paravance:35"
groups = [part.split(":") for part in layout.split(",")]
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=[site], count=int(count), site=site, cluster=cluster) for site, cluster, count in groups],
    networks=[testbed.NetworkArgs(id=f"vlan-{site}", roles=[site]) for site, _, _ in groups] if config.get_bool("network") else None,
)
pulumi.export("hosts", nodes.hosts.apply(len))
pulumi.export("roles", nodes.roles.apply(lambda roles: {r: len(h) for r, h in roles.items()}))
