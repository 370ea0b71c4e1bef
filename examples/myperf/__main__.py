"""myperf's infrastructure and steps; `myperf.py` drives it (up, bench, backup, destroy).

A server and `clients` clients (stack config, default 1) on one experiment network; a Play
installs iperf3 and prepares the results directory; one `iperf3 -s` per client runs in the
background on the server. The stack config `myperf:bench` (set by `myperf bench`: run id,
duration, extra iperf3 client options) adds the measurement step: every client runs iperf3
against its server on the experiment network and keeps its JSON report in
/root/results/<id>.json. The
config `myperf:backup` (set by `myperf backup`) adds a Fetch of every client's results into
`backups/<stack>/<host>/`.
"""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
clients = config.get_int("clients") or 1
stack = pulumi.get_stack()

nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1),
        testbed.MachineGroupArgs(roles=["client"], count=clients),
    ],
    networks=[testbed.NetworkArgs(id="experiment", roles=["server", "client"])],
)

deps = testbed.Play(
    "deps",
    inventory=nodes.inventory,
    tasks=[
        {"name": "iperf3", "ansible.builtin.shell": "dpkg -s iperf3 >/dev/null 2>&1 && echo present || "
         "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 && echo installed)",
         "register": "iperf3", "changed_when": "'installed' in iperf3.stdout"},
        {"name": "results directory", "ansible.builtin.file": {"path": "/root/results", "state": "directory"}},
    ],
)

# One iperf3 server per client (ports 5201…), so clients measure at once.
server = testbed.Command(
    "iperf3-server",
    inventory=nodes.inventory,
    on="server",
    create=f"for n in $(seq {clients}); do iperf3 -s -p $((5200 + n)) & done; wait",
    background=True,
    opts=pulumi.ResourceOptions(depends_on=[deps]),
)

pulumi.export("roles", nodes.roles)
server_address = nodes.hosts.apply(
    lambda hosts: next(n.address for h in hosts if "server" in h.roles for n in h.networks if n.id == "experiment"))
pulumi.export("server_address", server_address)

bench = config.get_object("bench")
if bench:
    run, duration, extra = bench["id"], int(bench.get("duration", 10)), str(bench.get("args", ""))
    out = f"/root/results/{run}.json"
    # Client k of the `client` group talks to the server's port 5200 + k (Ansible knows k; host
    # names differ per testbed). Retried while that server is not listening yet; the printed
    # figure is the received Gbit/s, and a report with an error fails the step.
    script = (
        "ok=1; for i in $(seq 50); do "
        f"if iperf3 -c {{{{ server }}}} -p {{{{ 5201 + groups['client'].index(inventory_hostname) }}}} -t {duration} {extra} -J >{out}.tmp; "
        f"then ok=0; break; fi; sleep 0.2; done; mv {out}.tmp {out}; "
        "python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); e=r.get(\"end\", {}).get(\"sum_received\"); "
        "print(round(e[\"bits_per_second\"]/1e9, 3)) if e and not r.get(\"error\") else sys.exit(r.get(\"error\", \"no result\"))' "
        f"{out} && exit $ok"
    )
    measure = testbed.Play(
        "bench",
        inventory=nodes.inventory,
        on="client",
        vars={"server": server_address},
        triggers=[run],
        tasks=[{"name": "iperf3", "ansible.builtin.shell": script, "register": "iperf3"}],
        opts=pulumi.ResourceOptions(depends_on=[server]),
    )
    pulumi.export("bench", {"id": run, "duration": duration, "args": extra,
                            "gbps": measure.registered.apply(lambda r: {h: v["iperf3"]["stdout"] for h, v in r.items()})})

backup = config.get("backup")
if backup:
    fetched = testbed.Fetch(
        "backup",
        inventory=nodes.inventory,
        on="client",
        paths=["/root/results"],
        destination=f"backups/{stack}",
        triggers=[backup],
        opts=pulumi.ResourceOptions(depends_on=[server]),
    )
    pulumi.export("backup", {
        "directory": fetched.destination,
        "files": fetched.files.apply(lambda fs: [{"host": f.host, "path": f.path, "size": f.size, "sha256": f.sha256} for f in fs]),
    })
