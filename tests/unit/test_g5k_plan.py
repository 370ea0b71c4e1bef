"""Reservation → Grid'5000 plan: options, one job per site, vlans per network, node split."""

from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec
from testbed_provider.testbeds.g5k.plan import make_plan, split_nodes, validate


def spec(machines, networks=()):
    return ReservationSpec("exp", [MachineGroup(**m) for m in machines], [NetworkSpec(**n) for n in networks])


def props(failures):
    return {f.property for f in failures}


def test_one_job_per_site_with_vlans_for_networks():
    s = spec(
        [
            {"roles": ["server"], "count": 1, "options": {"cluster": "taurus", "walltime": "2:00"}},
            {"roles": ["client"], "count": 2, "options": {"environment": "ubuntu2204-min"}},
            {"roles": ["far"], "count": 1, "options": {"site": "nancy"}},
        ],
        [{"id": "exp", "roles": ["server", "client"]}],
    )
    assert validate(s, "lyon") == []
    plan = make_plan(s, "lyon")
    assert [p.site for p in plan.sites] == ["lyon", "nancy"]
    assert plan.resources(s, plan.sites[0]) == (
        "{cluster='taurus' AND (eth_kavlan_count > 1)}/nodes=1+{eth_kavlan_count > 1}/nodes=2+{type='kavlan'}/vlan=1,walltime=2:00:00"
    )
    assert plan.resources(s, plan.sites[1]) == "nodes=1,walltime=2:00:00"
    assert plan.environments == {0: "debian12-min", 1: "ubuntu2204-min", 2: "debian12-min"}
    nodes = ["nova-1.lyon.grid5000.fr", "taurus-3.lyon.grid5000.fr", "nova-10.lyon.grid5000.fr"]
    assert split_nodes(s, plan.sites[0], nodes) == {
        0: ["taurus-3.lyon.grid5000.fr"],
        1: ["nova-1.lyon.grid5000.fr", "nova-10.lyon.grid5000.fr"],
    }


def test_g5k_rules_name_the_property():
    s = spec(
        [
            {"roles": ["a"], "count": 1, "options": {"walltime": "1:00", "colour": "red"}},
            {"roles": ["b"], "count": 1, "options": {"site": "nancy", "walltime": "3:00"}},
        ],
        [{"id": "n", "roles": ["a", "b"], "cidr": "10.0.0.0/24"}],
    )
    assert props(validate(s, None)) == {"machines[0].colour", "machines[0].site", "machines[1].walltime", "networks[0].cidr"}
    assert props(validate(s, "lyon")) == {"machines[0].colour", "machines[1].walltime", "networks[0].cidr"}


def test_a_network_across_sites_is_a_kavlan_global_vlan_of_its_first_members_site():
    s = spec(
        [
            {"roles": ["server"], "count": 1, "options": {"site": "lyon", "cluster": "taurus"}},
            {"roles": ["client"], "count": 2, "options": {"site": "nancy", "cluster": "grisou"}},
            {"roles": ["local"], "count": 1, "options": {"site": "lyon"}},
            {"roles": ["idle"], "count": 1, "options": {"site": "nancy"}},
        ],
        [{"id": "experiment", "roles": ["server", "client"]}, {"id": "side", "roles": ["server", "local"]}],
    )
    assert validate(s, None) == []
    plan = make_plan(s, None)
    assert [(p.site, p.networks, p.global_network) for p in plan.sites] == [("lyon", ["side"], "experiment"), ("nancy", [], None)]
    assert plan.resources(s, plan.sites[0]) == (
        "{cluster='taurus' AND (eth_kavlan_count > 1)}/nodes=1+{eth_kavlan_count > 1}/nodes=1"
        "+{type='kavlan'}/vlan=1+{type='kavlan-global'}/vlan=1,walltime=1:00:00"
    )
    assert plan.resources(s, plan.sites[1]) == "{cluster='grisou' AND (eth_kavlan_count > 1)}/nodes=2+nodes=1,walltime=1:00:00"
    # the home site is the first member group's: the same network seen from nancy first
    s2 = spec(
        [{"roles": ["client"], "count": 1, "options": {"site": "nancy"}}, {"roles": ["server"], "count": 1, "options": {"site": "lyon"}}],
        [{"id": "experiment"}],
    )
    plan2 = make_plan(s2, None)
    assert plan2.resources(s2, plan2.sites[0]) == "{eth_kavlan_count > 1}/nodes=1+{type='kavlan-global'}/vlan=1,walltime=1:00:00"
    assert plan2.resources(s2, plan2.sites[1]) == "{eth_kavlan_count > 1}/nodes=1,walltime=1:00:00"


def test_one_kavlan_global_vlan_per_home_site():
    s = spec(
        [
            {"roles": ["a"], "count": 1, "options": {"site": "lyon"}},
            {"roles": ["b"], "count": 1, "options": {"site": "nancy"}},
            {"roles": ["c"], "count": 1, "options": {"site": "rennes"}},
        ],
        [{"id": "ab", "roles": ["a", "b"]}, {"id": "ac", "roles": ["a", "c"]}, {"id": "bc", "roles": ["b", "c"]}],
    )
    failures = validate(s, None)
    assert props(failures) == {"networks[1]"}
    assert "lyon" in failures[0].reason and "networks[0]" in failures[0].reason
