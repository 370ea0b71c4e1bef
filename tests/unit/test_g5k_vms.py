"""VMonG5k's placement rules: nodes per group, the subnet MAC scheme, round-robin spread."""

import pytest

from testbed_provider.testbeds.g5k.vms import address_for, mac_for, physical_nodes, reserve_mb, round_robin, subnet_addresses


def test_reserve_is_two_percent_clamped():
    assert reserve_mb(8192) == 256  # 2 % is 163 MB: the floor
    assert reserve_mb(65536) == 1310
    assert reserve_mb(512 * 1024) == 4096  # 2 % is 10 GB: the ceiling


def test_nodes_by_cpu_and_by_memory():
    # 32 threads, 64 GB (reserve 1310 MB): 40 tiny VMs need 2 nodes for their vCPUs
    assert physical_nodes(40, 1, 512, 32, 65536) == 2
    # 10 large VMs (4 cores, 4 GB) on 16-thread 16 GB nodes: cpu 3, memory ceil(40960/16128)=3
    assert physical_nodes(10, 4, 4096, 16, 16384) == 3
    # memory-bound: 4 extra-large (6 GB) on 64-thread 8 GB nodes (usable 7936): 4*6144/7936 → 4
    assert physical_nodes(4, 6, 6144, 64, 8192) == 4
    # never more nodes than VMs, never fewer than one
    assert physical_nodes(2, 1, 512, 1, 1024) == 2
    assert physical_nodes(1, 1, 512, 64, 262144) == 1
    assert physical_nodes(0, 1, 512, 64, 262144) == 0


def test_a_node_without_room_is_refused():
    with pytest.raises(ValueError):
        physical_nodes(1, 1, 512, 0, 8192)


def test_mac_scheme_round_trips():
    assert mac_for("10.158.4.1") == "00:16:3e:9e:04:01"
    assert mac_for("198.18.24.17") == "00:16:3e:12:18:11"
    assert address_for("00:16:3E:9E:04:01") == "158.4.1"
    with pytest.raises(ValueError):
        address_for("52:54:00:00:00:01")


def test_subnet_addresses_skip_the_gateway():
    got = list(subnet_addresses("198.18.28.0/22", gateway="198.18.31.254"))
    assert got[0] == "198.18.28.1" and "198.18.31.254" not in got and len(got) == 1021


def test_round_robin():
    assert round_robin(["a", "b", "c"], ["n1", "n2"]) == [("a", "n1"), ("b", "n2"), ("c", "n1")]
    with pytest.raises(ValueError):
        round_robin(["a"], [])
