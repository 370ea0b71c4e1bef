"""The static backend with the machines named in the program: a group's `hosts`."""

import json

import pulumi
import pulumi_testbed as testbed

config = pulumi.Config()
given = json.loads(config.require("machines"))  # [{address, alias?, networks: [{id, address}]}]
nodes = testbed.Reservation(
    "nodes",
    machines=[
        testbed.MachineGroupArgs(
            roles=["node"],
            count=len(given),
            hosts=[
                testbed.ExistingHostArgs(
                    address=h["address"],
                    alias=h.get("alias"),
                    networks=[testbed.ExistingHostNetworkArgs(id=n["id"], address=n["address"]) for n in h["networks"]],
                )
                for h in given
            ],
        )
    ],
    networks=[testbed.NetworkArgs(id="experiment")],
)
hostname = testbed.Command("hostname", inventory=nodes.inventory, on="all", create="hostname")
pulumi.export("ran", hostname.results)
pulumi.export("addresses", nodes.addresses)
