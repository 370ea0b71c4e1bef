"""The OAR resource language and the placement of requests, on the generated platform."""

from __future__ import annotations

import pytest

from g5k_emulator import oar
from g5k_emulator.reference import build_platform

PLATFORM = build_platform()


def place(text: str, site: str = "rennes", queue: str = "default", types=(), busy: oar.Busy | None = None):
    request = oar.parse_resources(text)
    return oar.Placer(PLATFORM, site, queue, types).allocate(request, busy or oar.Busy())


def clusters(alloc: oar.Allocation) -> list[str]:
    return [n.split("-")[0] for n in alloc.nodes]


@pytest.mark.parametrize("text,seconds", [("1", 3600), ("1:30", 5400), ("0:00:45", 45), ("01:00:00", 3600), (2, 7200)])
def test_walltime_forms(text, seconds):
    assert oar.parse_walltime(text) == seconds


def test_groups_levels_and_walltime():
    request = oar.parse_resources("{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1+slash_22=1,walltime=2:00")
    assert request.walltime == 7200
    assert [g.kind for g in request.groups] == ["nodes", "vlan", "subnet"]
    assert request.groups[0].levels == [("host", 2)]


def test_cluster_level_groups_nodes_by_cluster():
    one = place("/cluster=1/nodes=4")
    assert len(set(clusters(one))) == 1 and len(one.nodes) == 4
    two = place("/cluster=2/nodes=3")
    assert len(two.nodes) == 6 and len(set(clusters(two))) == 2
    assert place("/cluster=4/nodes=1") is None  # rennes has three clusters in the default queue


def test_all_and_best():
    assert len(place("{cluster='roazhon'}/nodes=ALL").nodes) == 8
    busy = oar.Busy(nodes={"roazhon-1.rennes.grid5000.fr"})
    assert place("{cluster='roazhon'}/nodes=ALL", busy=busy) is None
    assert len(place("{cluster='roazhon'}/nodes=BEST", busy=busy).nodes) == 7


def test_sql_filters():
    assert set(clusters(place("{cluster in ('parasilo', 'roazhon') and memnode >= 150000}/nodes=3"))) == {"roazhon"}
    assert set(clusters(place("{not cluster = 'paravance' and cluster like 'para%'}/nodes=2"))) == {"parasilo"}
    assert set(clusters(place("{cluster not in ('paravance')}/nodes=20"))) == {"parasilo", "roazhon"}
    assert place("{host = 'paravance-7.rennes.grid5000.fr'}/nodes=1").nodes == ["paravance-7.rennes.grid5000.fr"]
    assert set(clusters(place("{(type='default' or type='disk') AND cluster='parasilo'}/nodes=2"))) == {"parasilo"}
    assert place("{cluster='O''Brien'}/nodes=1") is None
    with pytest.raises(oar.NotEnoughResources):
        place("{colour='red'}/nodes=1")


def test_vlans_and_subnets():
    assert place("{type='kavlan-local'}/vlan=1").vlans == [1]
    assert place("{type='kavlan'}/vlan=2").vlans == [4, 5]
    assert place("{type='kavlan-global'}/vlan=1", site="lyon").vlans == [11]
    assert place("{type='kavlan'}/vlan=1", busy=oar.Busy(vlans={4, 5})).vlans == [6]
    assert place("{type='kavlan'}/vlan=7") is None
    assert len(place("slash_22=2").subnets) == 2 and place("slash_22=3") is None
    with pytest.raises(oar.NotEnoughResources):
        place("slash_16=1")


def test_exotic_and_queues():
    assert place("{cluster='pyxis'}/nodes=1", site="lyon") is None
    assert place("{cluster='pyxis'}/nodes=1", site="lyon", types=["exotic"]).nodes == ["pyxis-1.lyon.grid5000.fr"]
    assert place("{cluster='grappe'}/nodes=1", site="nancy") is None
    assert place("{cluster='grappe'}/nodes=1", site="nancy", queue="production").nodes


@pytest.mark.parametrize("text", ["nodes=two", "{cluster='x'/nodes=1", "nodes=1,colour=red", "/fish", "{cluster=}/nodes=1", ""])
def test_syntax_errors(text):
    with pytest.raises(oar.RequestError):
        oar.parse_resources(text)


def test_earliest_start_is_the_end_of_a_blocking_job():
    request = oar.parse_resources("{cluster='roazhon'}/nodes=8")
    placer = oar.Placer(PLATFORM, "rennes", "default", [])
    busy = oar.Placed(0, 1000, oar.Allocation(nodes=["roazhon-3.rennes.grid5000.fr"]))
    assert oar.earliest(placer, request, 100, [busy], 10)[0] == 1000
    assert oar.earliest(placer, request, 100, [busy], 10, only_at=500) is None
    assert oar.earliest(placer, request, 100, [busy], 10, only_at=1000)[0] == 1000
