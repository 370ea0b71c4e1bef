"""OAR request building and the g5k Job's input rules (pure, no API)."""

import datetime as dt

import pytest

from testbed_provider.protocol.codec import UNKNOWN
from testbed_provider.resources.g5k_job import validate
from testbed_provider.testbeds.g5k import naming
from testbed_provider.testbeds.g5k.oar import (
    NodeGroup,
    OarError,
    ResourceRequest,
    VlanRequest,
    check_raw_resources,
    format_walltime,
    oar_date,
    parse_date,
    parse_walltime,
    resources_string,
)


def test_enoslib_shape():
    request = ResourceRequest(nodes=[NodeGroup(2, cluster="paravance")], vlan=VlanRequest("kavlan", 1))
    assert resources_string(request, 3600) == "{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1,walltime=1:00:00"


def test_groups_properties_named_nodes_and_subnets():
    request = ResourceRequest(
        nodes=[NodeGroup(1, cluster="grisou", properties="gpu_count > 0"), NodeGroup(1, hosts=("nova-3.lyon.grid5000.fr",)), NodeGroup(3)],
        subnets={"slash_22": 2},
    )
    assert resources_string(request, 5400) == (
        "{network_address in ('nova-3.lyon.grid5000.fr')}/nodes=1+{cluster='grisou' AND (gpu_count > 0)}/nodes=1"
        "+nodes=3+slash_22=2,walltime=1:30:00"
    )


def test_quotes_are_escaped():
    assert resources_string(ResourceRequest(nodes=[NodeGroup(1, cluster="a'b")]), 60) == "{cluster='a''b'}/nodes=1,walltime=0:01:00"


@pytest.mark.parametrize("text,seconds", [("1", 3600), ("1:30", 5400), ("0:00:30", 30), ("12:00:00", 43200), (" 2:05:07 ", 7507)])
def test_walltime_forms(text, seconds):
    assert parse_walltime(text) == seconds
    assert parse_walltime(format_walltime(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "1h", "1:60", "0", "0:00:00", "-1", "169:00:00", 3600, None])
def test_bad_walltimes(text):
    with pytest.raises(OarError):
        parse_walltime(text)


def test_dates_are_paris_time():
    assert oar_date(parse_date("2026-07-01 10:00:00")) == "2026-07-01 10:00:00"
    assert oar_date(parse_date("2026-07-01T08:00:00Z")) == "2026-07-01 10:00:00"  # CEST = UTC+2
    assert oar_date(parse_date("2026-12-01T08:00:00+00:00")) == "2026-12-01 09:00:00"  # CET = UTC+1
    assert parse_date("2026-12-01 09:00:00").utcoffset() == dt.timedelta(hours=1)
    for bad in ("tomorrow", "2026-13-01 00:00:00", "01/12/2026", 5):
        with pytest.raises(OarError):
            parse_date(bad)


def test_raw_resources_sanity():
    assert check_raw_resources(" nodes=2 ") == "nodes=2"
    for bad in ("", "{cluster='x'/nodes=1", "nodes=0", "{cluster='x'}/nodes=BEST"):
        with pytest.raises(OarError):
            check_raw_resources(bad)


def props(failures):
    return {f.property for f in failures}


def test_job_inputs_make_the_exact_request():
    spec, failures = validate(
        {
            "site": "lyon",
            "nodes": [{"cluster": "taurus", "count": 2}],
            "vlan": {"type": "kavlan"},
            "walltime": "2:00",
            "types": ["deploy"],
            "name": "exp",
            "reservation": "2026-07-01T08:00:00Z",
        }
    )
    assert failures == []
    assert spec.resources == "{cluster='taurus'}/nodes=2+{type='kavlan'}/vlan=1,walltime=2:00:00"
    assert spec.body == {
        "resources": spec.resources,
        "command": "sleep infinity",
        "queue": "default",
        "name": "exp",
        "types": ["deploy"],
        "reservation": "2026-07-01 10:00:00",
    }
    assert spec.walltime == 7200


def test_job_input_failures_name_the_property():
    _, failures = validate(
        {
            "site": "Lyon!",
            "nodes": [{"count": 0, "colour": "red"}],
            "walltime": "forever",
            "queue": "fast",
            "reservation": "soon",
            "vlan": {"type": "ethernet"},
            "subnet": {"size": "slash_8"},
            "waitUntil": "never",
            "bogus": 1,
        }
    )
    assert props(failures) == {
        "site",
        "nodes[0].count",
        "nodes[0].colour",
        "walltime",
        "queue",
        "reservation",
        "vlan.type",
        "subnet.size",
        "waitUntil",
        "bogus",
    }


def test_raw_resources_rules():
    spec, failures = validate({"site": "lyon", "rawResources": "{cluster='nova'}/nodes=1,walltime=0:30"})
    assert not failures and spec.walltime == 1800 and spec.resources == "{cluster='nova'}/nodes=1,walltime=0:30"
    spec, failures = validate({"site": "lyon", "rawResources": "nodes=1", "walltime": "3"})
    assert spec.resources == "nodes=1,walltime=3:00:00"
    _, failures = validate({"site": "lyon", "rawResources": "nodes=1,walltime=1", "walltime": "2"})
    assert props(failures) == {"walltime"}
    _, failures = validate({"site": "lyon", "rawResources": "nodes=1", "nodes": [{"count": 1}]})
    assert props(failures) == {"rawResources"}
    _, failures = validate({"site": "lyon"})
    assert props(failures) == {"nodes"}
    _, failures = validate({"site": "lyon", "nodes": [{"count": 1}], "queue": "besteffort", "reservation": "2026-07-01 10:00:00"})
    assert props(failures) == {"queue"}


def test_unknowns_in_preview_are_not_failures():
    spec, failures = validate({"site": UNKNOWN, "nodes": [{"count": UNKNOWN}], "walltime": UNKNOWN})
    assert spec is None and failures == []


def test_kavlan_names():
    assert naming.kavlan_name("taurus-3.lyon.grid5000.fr", "lyon", "4", "eth1", primary=False) == "taurus-3-eth1-kavlan-4.lyon.grid5000.fr"
    assert naming.kavlan_name("taurus-3", "lyon", "4", "eth0", primary=True) == "taurus-3-kavlan-4.lyon.grid5000.fr"
    assert naming.interface_address("taurus-3.lyon.grid5000.fr", "lyon", "eth1", primary=False) == "taurus-3-eth1.lyon.grid5000.fr"
    assert naming.cluster_of("taurus-12.lyon.grid5000.fr") == "taurus"
