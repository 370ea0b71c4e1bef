"""Reservation → Grid'5000 plan: options, one job per site, vlans per network, node split."""

from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec
from testbed_provider.testbeds.g5k.plan import make_plan, split_nodes, validate


def spec(machines, networks=()):
    return ReservationSpec("exp", [MachineGroup(**m) for m in machines], [NetworkSpec(**n) for n in networks])


def props(failures):
    return {f.property for f in failures}


def test_one_job_per_site_with_vlans_for_networks():
    s = spec([{"roles": ["server"], "count": 1, "options": {"cluster": "taurus", "walltime": "2:00"}},
              {"roles": ["client"], "count": 2, "options": {"environment": "ubuntu2204-min"}},
              {"roles": ["far"], "count": 1, "options": {"site": "nancy"}}],
             [{"id": "exp", "roles": ["server", "client"]}])
    assert validate(s, "lyon") == []
    plan = make_plan(s, "lyon")
    assert [p.site for p in plan.sites] == ["lyon", "nancy"]
    assert plan.resources(s, plan.sites[0]) == (
        "{cluster='taurus' AND (eth_kavlan_count > 1)}/nodes=1+{eth_kavlan_count > 1}/nodes=2+{type='kavlan'}/vlan=1,walltime=2:00:00")
    assert plan.resources(s, plan.sites[1]) == "nodes=1,walltime=2:00:00"
    assert plan.environments == {0: "debian12-min", 1: "ubuntu2204-min", 2: "debian12-min"}
    nodes = ["nova-1.lyon.grid5000.fr", "taurus-3.lyon.grid5000.fr", "nova-10.lyon.grid5000.fr"]
    assert split_nodes(s, plan.sites[0], nodes) == {0: ["taurus-3.lyon.grid5000.fr"],
                                                    1: ["nova-1.lyon.grid5000.fr", "nova-10.lyon.grid5000.fr"]}


def test_g5k_rules_name_the_property():
    s = spec([{"roles": ["a"], "count": 1, "options": {"walltime": "1:00", "colour": "red"}},
              {"roles": ["b"], "count": 1, "options": {"site": "nancy", "walltime": "3:00"}}],
             [{"id": "n", "roles": ["a", "b"], "cidr": "10.0.0.0/24"}])
    assert props(validate(s, None)) == {"machines[0].colour", "machines[0].site", "machines[1].walltime", "networks[0].cidr"}
    assert props(validate(s, "lyon")) == {"machines[0].colour", "machines[1].walltime", "networks[0].cidr", "networks[0].roles"}
