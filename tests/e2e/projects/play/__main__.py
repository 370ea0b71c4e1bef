"""A server and a client on one experiment network, configured by Ansible Plays whose inputs
the stack config switches (tests/e2e/test_play.py)."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1, vars={"iperf_port": int(config.get("port") or 5201)}),
        testbed.MachineGroupArgs(roles=["client"], count=1),
    ],
    networks=[testbed.NetworkArgs(id="exp", roles=["server", "client"])],
)

setup = testbed.Play(
    "setup",
    inventory=nodes.inventory,
    gather_facts=True,
    vars={"color": config.get("color") or "blue"},
    host_vars={"server-1": {"mode": "fast"}},
    triggers=[config.get("trigger") or "0"],
    tasks=[
        {"name": "greeting", "ansible.builtin.copy": {"dest": "/root/greeting.txt", "content": "hello {{ inventory_hostname }}\n"}},
        {"name": "server address", "ansible.builtin.template": {"src": "server.conf.j2", "dest": "/root/server.conf"}},
        {"name": "mode", "lineinfile": {"path": "/root/settings", "create": True, "line": "mode={{ mode | default('plain') }}"}},
        {"name": "facts", "copy": {"dest": "/root/facts.txt", "content": "{{ ansible_facts['hostname'] }}\n"}},
        {"name": "read back", "command": "cat /root/server.conf /root/settings /root/facts.txt", "register": "conf", "changed_when": False},
    ],
    destroy_tasks=[
        {
            "name": "leave a mark",
            "copy": {"dest": (config.get("marker") or "/var/tmp/unused") + "-{{ inventory_hostname }}", "content": "gone\n"},
        }
    ]
    if config.get("marker")
    else None,
)

site = testbed.Play(
    "site",
    inventory=nodes.inventory,
    playbook="site.yml",
    vars={"color": config.get("color") or "blue"},
    opts=pulumi.ResourceOptions(depends_on=[setup]),
)

if config.get_bool("failing"):
    testbed.Play(
        "failing",
        inventory=nodes.inventory,
        on="client",
        tasks=[{"name": "must fail", "ansible.builtin.shell": "echo boom-$(hostname) >&2; exit 4"}],
        opts=pulumi.ResourceOptions(depends_on=[setup]),
    )

pulumi.export("changed", setup.changed)
pulumi.export("hostStats", setup.host_stats)
pulumi.export("conf", setup.registered.apply(lambda r: {h: v["conf"]["stdout"] for h, v in r.items()}))
pulumi.export("site", site.registered.apply(lambda r: {h: v["site"]["stdout"] for h, v in r.items()}))
pulumi.export("addresses", nodes.hosts.apply(lambda hs: {h.name: h.networks[0].address for h in hs}))
