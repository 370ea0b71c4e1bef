"""Local backend, pure parts: host names, prefixes, address allocation, Check rules."""

import ipaddress

import pytest

from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec
from testbed_provider.testbeds.local.addressing import MANAGEMENT_SWITCH, allocate, allocate_management, capacity, default_cidr, slot
from testbed_provider.testbeds.local.naming import PREFIX_RE, new_prefix, plan_hosts, slug, switch_port
from testbed_provider.testbeds.local.validation import validate


def spec(machines, networks=(), name="r"):
    return ReservationSpec(
        name,
        [MachineGroup(list(r), c, dict(o)) for r, c, o in machines],
        [NetworkSpec(i, list(r) if r is not None else None, c) for i, r, c in networks],
    )


def props(failures):
    return {f.property: f.reason for f in failures}


def test_host_names_count_per_first_role_across_groups():
    s = spec(
        [(["server"], 1, {}), (["client"], 2, {}), (["db_primary", "server"], 1, {}), (["client", "x"], 1, {})],
        [("exp", ["client"], None), ("all", None, None)],
    )
    hosts = plan_hosts(s)
    assert [h.name for h in hosts] == ["server-1", "client-1", "client-2", "db-primary-1", "client-3"]
    assert [h.group for h in hosts] == [0, 1, 1, 2, 3]
    assert hosts[3].roles == ("db_primary", "server")
    assert [h.networks for h in hosts] == [(1,), (0, 1), (0, 1), (1,), (0, 1)]


def test_prefix_shape_and_slug():
    assert slug("My-Exp.v2") == "my_exp_v2"
    assert slug("a-very-long-stack-name-indeed") == "a_very_long"  # 12 chars, no trailing `_`
    assert slug("---") == "r"
    p = new_prefix("My-Exp.v2")
    assert PREFIX_RE.match(p) and p.startswith("tb-my_exp_v2-") and p.endswith("-")
    assert new_prefix("x") != new_prefix("x")


def test_a_prefix_is_never_the_start_of_another():
    # The slug carries no `-`, so even adversarial names cannot make one prefix extend another.
    a = new_prefix("foo")
    b = new_prefix(a.rstrip("-") + "-x")
    assert not b.startswith(a) and not a.startswith(b)


def test_lowest_free_allocation():
    net = ipaddress.IPv4Network("198.18.3.0/29")
    assert allocate(net, 3, used=[]) == ["198.18.3.1", "198.18.3.2", "198.18.3.3"]
    assert allocate(net, 2, used=["198.18.3.1", "198.18.3.3"]) == ["198.18.3.2", "198.18.3.4"]
    with pytest.raises(ValueError):
        allocate(net, 7, used=[])
    assert capacity(net) == 6 and capacity(ipaddress.IPv4Network("198.18.0.0/31")) == 2
    assert allocate_management(2, used=["198.19.0.1"]) == ["198.19.0.2", "198.19.0.3"]
    assert str(MANAGEMENT_SWITCH) not in allocate_management(3, used=[])
    assert default_cidr(7) == ipaddress.IPv4Network("198.18.7.0/24") and default_cidr(256) is None


def test_switch_ports_fit_interface_names():
    assert switch_port(slot("198.19.255.253"), 999) == "v65533-1000"
    assert len(switch_port(slot("198.19.255.253"), 9999)) <= 15


def test_valid_spec_passes():
    s = spec([(["server"], 1, {}), (["client"], 2, {})], [("exp", ["client"], "198.18.5.0/29"), ("all", None, None)])
    assert validate(s) == []


@pytest.mark.parametrize(
    "machines,networks,prop,fragment",
    [
        (
            [(["a"], 1, {}), (["b"], 1, {"cluster": "paravance"})],
            [],
            "machines[1].cluster",
            "Grid'5000 option; the local backend does not accept it",
        ),
        ([(["a"], 1, {"gpu": True})], [], "machines[0].gpu", "accepts no machine options"),
        ([(["a"], 1, {})], [("n", None, "10.0.0.0/24")], "networks[0].cidr", "within 198.18.0.0/16"),
        ([(["a"], 1, {})], [("n", None, "198.19.1.0/24")], "networks[0].cidr", "management network"),
        ([(["a"], 1, {})], [("n", None, "198.18.0.0/15")], "networks[0].cidr", "within 198.18.0.0/16"),
        ([(["a"], 3, {})], [("n", None, "198.18.0.0/30")], "networks[0].cidr", "3 host(s) join it"),
        ([(["a"], 2, {})], [("n", None, "198.18.0.0/30")], "networks[0].cidr", "one spare"),
        ([(["a"], 600, {}), (["b"], 401, {})], [], "machines", "at most 1000"),
        ([(["a"], 1, {})], [("n", None, None), ("m", None, "198.18.0.128/25")], "networks[0].cidr", "overlaps networks[1].cidr"),
        ([(["a" * 62], 1, {})], [], "machines[0].roles", "longer than 63"),
        ([(["web"], 1, {}), (["Web"], 1, {})], [], "machines[1].roles", "differs only in case"),
    ],
)
def test_local_check_failures(machines, networks, prop, fragment):
    failures = props(validate(spec(machines, networks)))
    assert prop in failures, failures
    assert fragment in failures[prop]


def test_only_members_count_towards_room():
    # 2 clients + 1 spare fit a /30 (2 addresses)? No: 3 needed. A /29 (6) fits; servers do not count.
    s = spec([(["server"], 10, {}), (["client"], 2, {})], [("exp", ["client"], "198.18.0.0/29")])
    assert validate(s) == []


def test_malformed_cidr_is_left_to_the_resource_layer():
    s = spec([(["a"], 1, {})], [("n", None, "not-a-cidr"), ("m", None, "198.18.0.0/33")])
    assert validate(s) == []
