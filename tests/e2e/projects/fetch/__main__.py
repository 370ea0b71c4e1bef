"""Hosts write results, Fetch brings them back, getFacts feeds a later step
(tests/e2e/test_fetch_facts.py); the stack config switches the inputs."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
trigger = config.get("trigger") or "0"
nodes = testbed.Reservation(
    "nodes",
    machines=[testbed.MachineGroupArgs(roles=["server"], count=1), testbed.MachineGroupArgs(roles=["client"], count=1)],
    networks=[testbed.NetworkArgs(id="exp", roles=["server", "client"])],
)

# Different content on each host (random bytes), a JSON file, a directory; the sums as the hosts see them.
write = testbed.Command(
    "write",
    inventory=nodes.inventory,
    triggers=[trigger],
    create="set -e; mkdir -p /root/results/logs/deep; cd /root/results"
    '; printf \'{"run": "%s", "rand": %s}\\n\' "$TRIGGER" "$(od -An -N4 -tu4 /dev/urandom | tr -d \' \')" > run.json'
    "; head -c 200000 /dev/urandom > logs/blob.bin; echo small > logs/deep/note.txt; echo other > notes.txt"
    "; sha256sum run.json logs/blob.bin logs/deep/note.txt",
    environment={"TRIGGER": trigger},
)
server_only = testbed.Command("server-only", inventory=nodes.inventory, on="server", create="echo only here > /root/only-on-server.txt")

paths = ["/root/results/*.json", "/root/results/logs"]
if config.get_bool("missing"):
    paths.append("/root/only-on-server.txt")
results = testbed.Fetch(
    "results",
    inventory=nodes.inventory,
    paths=paths,
    destination="results",
    triggers=[trigger],
    opts=pulumi.ResourceOptions(depends_on=[write, server_only]),
)
scratch = testbed.Fetch(
    "scratch",
    inventory=nodes.inventory,
    on="client",
    paths=["~/results/logs/deep"],
    destination="scratch",
    delete_on_destroy=True,
    opts=pulumi.ResourceOptions(depends_on=[write]),
)

# Facts feed a later step: the server's memory and its address on the experiment network.
facts = testbed.get_facts_output(inventory=nodes.inventory, on=config.get("factsOn") or "all", subset=["network", "hardware"])
server_facts = facts.hosts.apply(lambda hs: hs["server-1"])
eth1 = server_facts.apply(lambda f: next(i.ipv4 for i in f.interfaces if i.name == "eth1"))
use = testbed.Command(
    "use-facts",
    inventory=nodes.inventory,
    on="client",
    create=pulumi.Output.all(server_facts.memory_mb, eth1).apply(lambda a: f"echo mem={a[0]} server={a[1]}; grep MemTotal /proc/meminfo"),
)

pulumi.export("sums", write.results.apply(lambda rs: {r.host: r.stdout for r in rs}))
pulumi.export("files", results.files)
pulumi.export("fetchResults", results.results)
pulumi.export("totalBytes", results.total_bytes)
pulumi.export("scratchFiles", scratch.files)
pulumi.export("used", use.stdout)
pulumi.export(
    "serverFacts",
    server_facts.apply(
        lambda f: {
            "memoryMb": f.memory_mb,
            "vcpus": f.processor_vcpus,
            "kernel": f.kernel,
            "distribution": f.distribution,
            "defaultIpv4": f.default_ipv4,
            "interfaces": {i.name: i.ipv4 for i in f.interfaces},
            "rawHostname": f.facts.get("hostname"),
        }
    ),
)
pulumi.export("addresses", nodes.hosts.apply(lambda hs: {h.name: h.networks[0].address for h in hs}))
