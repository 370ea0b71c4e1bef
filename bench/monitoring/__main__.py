"""`count` local hosts (collector-1, server-1, client-1, node-1…) on one experiment network, an
iperf3 server on server-1, and what bench/monitoring.py compares, chosen by config:

- `step`: `none` (the reservation alone), `command` (a trivial Command on every host: the
  baseline of adding a step) or `monitoring` (testbed:services:Monitoring, every host an agent,
  collector-1 the collector, `scrape` seconds between scrapes, default 1);
- `backup` (any text, with `step: monitoring`): a MetricsBackup, taken again when it changes;
- `fetch` (any text) with `fetchPath`: a Fetch of that file from collector-1 (the backup's
  baseline), fetched again when `fetch` changes.
"""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
count = config.get_int("count") or 20
step = config.get("step") or "none"

groups = [testbed.MachineGroupArgs(roles=[role], count=1) for role in ("collector", "server", "client")]
if count > 3:
    groups.append(testbed.MachineGroupArgs(roles=["node"], count=count - 3))
nodes = testbed.Reservation("monbench", machines=groups, networks=[testbed.NetworkArgs(id="experiment")])
pulumi.export("addresses", nodes.host_addresses)

testbed.Command("iperf3-server", inventory=nodes.inventory, on="server", create="iperf3 -s -p 5201", background=True, ready_port=5201)

if step == "command":
    testbed.Command("trivial", inventory=nodes.inventory, on="all", create="true")
elif step == "monitoring":
    monitoring = testbed.services.Monitoring(
        "monitoring",
        inventory=nodes.inventory,
        collector="collector",
        agents="all",
        scrape_interval=config.get_float("scrape") or 1.0,
        ready_timeout=120,
    )
    pulumi.export("targets", monitoring.targets)
    backup = config.get("backup")
    if backup:
        metrics = testbed.services.MetricsBackup(
            "metrics", inventory=nodes.inventory, prometheus=monitoring.prometheus, destination="backups", triggers=[backup]
        )
        pulumi.export(
            "backup",
            {
                "directory": metrics.directory,
                "files": metrics.total_files,
                "bytes": metrics.total_bytes,
                "from": metrics.min_time,
                "to": metrics.max_time,
            },
        )

fetch = config.get("fetch")
if fetch:
    fetched = testbed.Fetch(
        "blob", inventory=nodes.inventory, on="collector", paths=[config.require("fetchPath")], destination="fetched", triggers=[fetch]
    )
    pulumi.export("fetched", {"files": fetched.total_files, "bytes": fetched.total_bytes})
