"""A server (its group's `port` variable) and two clients on an experiment network; Command
templates and a background server that says when it is ready. The stack config switches steps."""

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(roles=["server"], count=1, vars={"port": 5301}),
        testbed.MachineGroupArgs(roles=["client"], count=2),
    ],
    networks=[testbed.NetworkArgs(id="experiment")],
)
SERVER = "hostvars[groups['server'][0]]"

server = testbed.Command(
    "server",
    inventory=nodes.inventory,
    on="server",
    background=True,
    ready_port=5301,
    create="exec python3 -m http.server --bind {{ testbed_networks.experiment }} {{ port }}",
)
# Each client renders its own command, and reaches the server at once: its step waited until it listened.
hello = testbed.Command(
    "hello",
    inventory=nodes.inventory,
    on="client",
    create=f'echo "{{{{ inventory_hostname }}}} -> {{{{ {SERVER}.testbed_networks.experiment }}}}:{{{{ {SERVER}.port }}}} '
    f'{{{{ greeting }}}}"; python3 -c "import urllib.request as u; u.urlopen(\'http://{{{{ {SERVER}.testbed_networks.experiment }}}}'
    f":{{{{ {SERVER}.port }}}}/', timeout=5)\"",
    vars={"greeting": config.get("greeting") or "hello", "unused": config.get("unused") or "x"},
    opts=pulumi.ResourceOptions(depends_on=[server]),
)
secret = testbed.Command(
    "secret", inventory=nodes.inventory, on="server", create="echo token={{ token }}", vars={"token": config.require_secret("token")}
)

if config.get_bool("broken"):
    testbed.Command("broken", inventory=nodes.inventory, on="client", create=f"echo {{{{ {SERVER}.testbed_networks.experimnt }}}}")
if config.get_bool("never"):
    testbed.Command(
        "never",
        inventory=nodes.inventory,
        on="server",
        create="echo waiting; exec sleep 300",
        background=True,
        ready_port=5399,
        ready_timeout=1,
    )

pulumi.export("hello", hello.results.apply(lambda rs: {r.host: r.stdout for r in rs}))
pulumi.export("secret", secret.stdout)
pulumi.export("addresses", nodes.addresses)
pulumi.export("hostAddresses", nodes.host_addresses)
