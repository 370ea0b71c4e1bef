"""Two "sites" joined by an emulated wide-area link: EnOSlib's NetemHTB between two groups.

`site_a` and `site_b` (`count` machines each, default 1) share an `experiment` network; a Netem
puts `delay` (one way, default 50ms) and `rate` (default 100mbit) between the groups, both ways,
and measures the round trips it made (its `validation`). Then a ping and an iperf3 from the first
machine of site_a to the first of site_b say what an application sees. `accurate: true` subtracts
the measured base round trip (AccurateNetemHTB). `netem: false` (before the first up) gives the
baseline; set on a shaped stack it removes the constraints, but Pulumi deletes last, so that up's
measurements still ran through them: measure again with `testbed run site-a-1 -- ping …`.
Kind, sites and clusters come from the stack (`local`: VMs here; `g5k`: nodes of two sites;
`g5k-vm`: VMs on nodes of two sites, their network the sites' routed subnet addresses).
"""

import json
import re

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
shaped = config.get_bool("netem") is not False
delay, rate = config.get("delay") or "50ms", config.get("rate") or "100mbit"
duration = config.get_int("duration") or 10


def site(role: str, key: str) -> testbed.MachineGroupArgs:
    return testbed.MachineGroupArgs(roles=[role], count=config.get_int("count") or 1, kind=config.get("kind"),
                                    site=config.get(key), cluster=config.get(f"{key}Cluster"))


nodes = testbed.Reservation("nodes", machines=[site("site_a", "siteA"), site("site_b", "siteB")],
                            networks=[testbed.NetworkArgs(id="experiment", roles=["site_a", "site_b"])])
after: list[pulumi.Resource] = []
if shaped:
    wan = testbed.services.Netem("wan", inventory=nodes.inventory, network="experiment", groups=["site_a", "site_b"],
                                 default_delay=delay, default_rate=rate, accurate=config.get_bool("accurate"))
    after = [wan]
    pulumi.export("validation", wan.validation)

# Re-measured whenever the link changes (the triggers), after the Netem applied it.
link = [shaped, delay, rate, config.get_bool("accurate") or False]
target = "{{ hostvars[groups['site_b'][0]].testbed_networks.experiment }}"
ping = testbed.Command("ping", inventory=nodes.inventory, on="site_a[0]", create=f"ping -c 20 -i 0.2 -q {target}",
                       triggers=link, opts=pulumi.ResourceOptions(depends_on=after))
server = testbed.Command("iperf3-server", inventory=nodes.inventory, on="site_b[0]", create="iperf3 -s",
                         background=True, ready_port=5201, opts=pulumi.ResourceOptions(depends_on=after))
client = testbed.Command("iperf3-client", inventory=nodes.inventory, on="site_a[0]",
                         create=f"iperf3 -c {target} -t {{{{ duration }}}} -O 2 -J", vars={"duration": duration},
                         triggers=link, opts=pulumi.ResourceOptions(depends_on=[server, ping]))


def rtt(ping_output: str) -> dict[str, float]:
    """ping's summary line `rtt min/avg/max/mdev = a/b/c/d ms` as numbers."""
    found = re.search(r"= ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms", ping_output)
    return dict(zip(("min", "avg", "max", "mdev"), map(float, found.groups()))) if found else {}


pulumi.export("server_address", nodes.addresses["experiment"]["site_b"][0])
pulumi.export("asked", {"delay": delay if shaped else None, "rate": rate if shaped else None})
pulumi.export("rtt_ms", ping.stdout.apply(rtt))
pulumi.export("bandwidth_mbps", client.stdout.apply(lambda out: round(json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6, 1)))
pulumi.export("hosts", nodes.hosts.apply(lambda hosts: {h.name: h.roles for h in hosts}))
