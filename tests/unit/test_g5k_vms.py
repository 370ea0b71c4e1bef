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


def test_vms_are_named_as_locally_placed_round_robin_and_given_subnet_addresses():
    from testbed_provider.testbeds.base import MachineGroup, ReservationSpec, VmSize
    from testbed_provider.testbeds.g5k.vms import plan_vms

    spec = ReservationSpec(
        "r",
        [
            MachineGroup(["db_primary"], 3, kind="vm", vm=VmSize(1, 512)),
            MachineGroup(["front"], 1),  # nodes themselves: no VM
            MachineGroup(["db_primary", "x"], 1, kind="vm", vm=VmSize(1, 512)),
        ],
    )
    subnet = list(subnet_addresses("10.144.0.0/30"))  # two addresses
    subnets = {"nancy": subnet, "lyon": ["10.24.0.1"]}
    with pytest.raises(ValueError, match="no address left for db-primary-3"):
        plan_vms(spec, {0: ["n-1", "n-2"], 2: ["l-1"]}, {0: "nancy", 2: "lyon"}, {"nancy": subnet[:2], "lyon": []})
    subnets["nancy"] = list(subnet_addresses("10.144.0.0/29"))
    vms = plan_vms(spec, {0: ["n-1", "n-2"], 2: ["l-1"]}, {0: "nancy", 2: "lyon"}, subnets)
    assert [(v.name, v.node, v.address, v.mac) for v in vms] == [
        ("db-primary-1", "n-1", "10.144.0.1", "00:16:3e:90:00:01"),
        ("db-primary-2", "n-2", "10.144.0.2", "00:16:3e:90:00:02"),
        ("db-primary-3", "n-1", "10.144.0.3", "00:16:3e:90:00:03"),
        ("db-primary-4", "l-1", "10.24.0.1", "00:16:3e:18:00:01"),
    ]


def test_node_sizes_from_the_reference_api_and_vms_too_big_for_them():
    from testbed_provider.testbeds.base import MachineGroup, ReservationSpec, VmSize
    from testbed_provider.testbeds.g5k.vm_sizing import NodeSize, node_counts, node_size, too_big

    nodes = [
        {"architecture": {"nb_threads": 32}, "main_memory": {"ram_size": 96 << 30}},
        {"architecture": {"nb_threads": 16}, "main_memory": {"ram_size": 128 << 30}},
        {"architecture": {}, "main_memory": {}},  # undescribed: ignored
    ]
    assert node_size(nodes) == NodeSize(16, 96 * 1024)
    assert node_size([{}]) is None
    spec = ReservationSpec(
        "r",
        [
            MachineGroup(["a"], 40, options={"cluster": "c"}, kind="vm", vm=VmSize(1, 512, flavour="tiny")),
            MachineGroup(["b"], 1, options={"cluster": "c"}, kind="vm", vm=VmSize(8, 4096)),
            MachineGroup(["c"], 1, options={"cluster": "c"}, kind="vm", vm=VmSize(2, 16384, flavour="huge")),
        ],
    )
    small = NodeSize(4, 8192)
    assert node_counts(spec, {0: NodeSize(16, 96 * 1024)}) == {0: 3}
    failures = {f.property: f.reason for f in too_big(spec, {0: small, 1: small, 2: small})}
    assert set(failures) == {"machines[1].cores", "machines[2].flavour"}
    assert "a node of c has 4 threads" in failures["machines[1].cores"]
    assert "can give VMs 7936 MB" in failures["machines[2].flavour"]
