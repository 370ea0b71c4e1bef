"""Check rules of `kind: vm` machine groups: the resource layer's (flavour or cores/memoryMb,
VM settings only on VMs), the local backend's (tools, image, memory) and g5k's (not yet)."""

from __future__ import annotations

import pytest

from testbed_provider.hosts.vm import machine
from testbed_provider.resources.reservation import spec_from_inputs, validate_inputs
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec, VmSize
from testbed_provider.testbeds.g5k.plan import make_plan, split_nodes
from testbed_provider.testbeds.g5k.plan import validate as g5k_validate
from testbed_provider.testbeds.local.validation import MEMORY_MARGIN_MB, QEMU_OVERHEAD_MB, VmFacts, validate


def props(failures):
    return {f.property: f.reason for f in failures}


def inputs(*groups):
    return {"name": "r", "machines": [{"roles": [f"g{i}"], "count": 1, **g} for i, g in enumerate(groups)]}


def test_a_vm_group_passes_and_its_flavour_sets_the_size():
    given = inputs({}, {"kind": "vm", "flavour": "extra-large", "count": 2}, {"kind": "vm", "cores": 2, "memoryMb": 700}, {"kind": "vm"})
    assert validate_inputs(given) == []
    spec = spec_from_inputs(given)
    assert [g.kind for g in spec.machines] == ["host", "vm", "vm", "vm"]
    assert spec.machines[0].vm is None and spec.machines[0].options == {}
    assert spec.machines[1].vm == VmSize(6, 6144, "extra-large")
    assert spec.machines[2].vm == VmSize(2, 700)
    assert spec.machines[3].vm == VmSize(1, 512)  # tiny, EnOSlib's default
    assert spec.machines[1].options == {}  # VM settings are never a backend option


@pytest.mark.parametrize(
    "group,prop,fragment",
    [
        ({"kind": "vm", "flavour": "huge"}, "machines[0].flavour", "`tiny`, `small`, `medium`, `big`, `large`, `extra-large`"),
        ({"kind": "vm", "flavour": "big", "cores": 2}, "machines[0].cores", "either `flavour` or `cores`/`memoryMb`"),
        ({"kind": "vm", "flavour": "big", "memoryMb": 900}, "machines[0].memoryMb", "not both"),
        ({"kind": "box"}, "machines[0].kind", "one of `host`, `vm`"),
        ({"kind": "vm", "memoryMb": 64}, "machines[0].memoryMb", "at least 128"),
        ({"kind": "vm", "cores": 0}, "machines[0].cores", "at least 1"),
        ({"cores": 2}, "machines[0].cores", "needs `kind: vm`"),
        ({"kind": "host", "image": "/x"}, "machines[0].image", "needs `kind: vm`"),
    ],
)
def test_bad_vm_settings_name_the_property(group, prop, fragment):
    found = props(validate_inputs(inputs(group)))
    assert prop in found and fragment in found[prop], found


def vm_spec(*groups: tuple[int, VmSize]) -> ReservationSpec:
    return ReservationSpec(
        "r", [MachineGroup(["h"], 1)] + [MachineGroup([f"v{i}"], n, kind="vm", vm=size) for i, (n, size) in enumerate(groups)]
    )


def test_memory_beyond_what_the_machine_can_give_names_the_group_and_says_what_is_free():
    free = 4096
    can_give = free - MEMORY_MARGIN_MB
    fits = (can_give // (512 + QEMU_OVERHEAD_MB), VmSize(1, 512, "tiny"))
    assert validate(vm_spec(fits), VmFacts(free)) == []
    # one tiny VM more than fits: named by its flavour, with what it needs and what is free
    failures = props(validate(vm_spec((fits[0] + 1, fits[1])), VmFacts(free)))
    assert list(failures) == ["machines[1].flavour"]
    assert f"can give {can_give} MB" in failures["machines[1].flavour"] and f"MemAvailable {free} MB" in failures["machines[1].flavour"]
    # summed over the groups: the second one does not fit beside the first; explicit size → memoryMb
    failures = props(validate(vm_spec((1, VmSize(1, 2048)), (1, VmSize(1, 1024))), VmFacts(free)))
    assert list(failures) == ["machines[2].memoryMb"] and "with the groups before it" in failures["machines[2].memoryMb"]


def test_missing_tools_say_what_to_install():
    facts = VmFacts(1 << 20, [("qemu-system-x86_64", "qemu-system-x86")], [("mmdebstrap", "mmdebstrap")], image_cached=False)
    failures = props(validate(vm_spec((1, VmSize(1, 512))), facts))
    assert "qemu-system-x86_64, mmdebstrap" in failures["machines[1].kind"]
    assert "install mmdebstrap qemu-system-x86" in failures["machines[1].kind"]
    # the image built already: building tools are not needed
    facts = VmFacts(1 << 20, [], [("mmdebstrap", "mmdebstrap")], image_cached=True)
    assert validate(vm_spec((1, VmSize(1, 512))), facts) == []
    # no VM group: no VM rule at all
    assert validate(vm_spec(), None) == []


def test_an_image_that_does_not_exist_or_is_no_image(tmp_path):
    bogus = tmp_path / "disk.img"
    bogus.write_bytes(b"not qcow2")
    (tmp_path / "dir").mkdir()
    qcow = tmp_path / "ok.qcow2"
    qcow.write_bytes(machine.QCOW2_MAGIC + b"\0" * 100)
    cases = {str(tmp_path / "none"): "does not exist", str(bogus): "not a qcow2 disk", str(tmp_path / "dir"): "not a complete VM image"}
    for path, fragment in cases.items():
        problem = machine.image_problem(path)
        assert problem and fragment in problem, (path, problem)
        failures = props(validate(vm_spec((1, VmSize(1, 512, image=path))), VmFacts(1 << 20, image_problems={path: problem})))
        assert fragment in failures["machines[1].image"]
    assert machine.image_problem(str(qcow)) is None


def test_g5k_vm_groups_need_a_cluster_and_stay_off_experiment_networks():
    vm = MachineGroup(["a"], 1, options={"site": "nancy"}, kind="vm", vm=VmSize(1, 512))
    spec = ReservationSpec("r", [vm, MachineGroup(["b"], 1, options={"site": "nancy"})], [NetworkSpec("n1")])
    failures = props(g5k_validate(spec, None))
    assert "machines[0].kind" not in failures
    assert "that cluster's threads and memory" in failures["machines[0].cluster"]
    assert "joins VMs (machines[0]) and nodes" in failures["networks[0].roles"]
    only_vms = ReservationSpec("r", [vm, MachineGroup(["b"], 1, options={"site": "nancy"})], [NetworkSpec("n1", roles=["a"])])
    assert "networks[0].roles" not in props(g5k_validate(only_vms, None))
    ok = ReservationSpec("r", [MachineGroup(["a"], 3, options={"site": "nancy", "cluster": "gros"}, kind="vm", vm=VmSize(2, 2048))])
    assert g5k_validate(ok, None) == []
    missing = ReservationSpec(
        "r", [MachineGroup(["a"], 1, options={"site": "nancy", "cluster": "gros"}, kind="vm", vm=VmSize(1, 512, image="/no/such"))]
    )
    assert "does not exist" in props(g5k_validate(missing, None))["machines[0].image"]
    crowded = ReservationSpec("r", [MachineGroup(["a"], 1022, options={"site": "nancy", "cluster": "gros"}, kind="vm", vm=VmSize(1, 512))])
    assert "more than 1021 VMs on nancy" in props(g5k_validate(crowded, None))["machines[0].count"]


def test_g5k_plan_asks_for_the_vms_nodes_and_a_subnet():
    vms = MachineGroup(["a"], 5, options={"site": "nancy", "cluster": "gros"}, kind="vm", vm=VmSize(1, 512))
    hosts = MachineGroup(["b"], 1, options={"site": "nancy"})
    spec = ReservationSpec("r", [vms, hosts], [NetworkSpec("vm-net", roles=["a"])])
    plan = make_plan(spec, None, {0: 2})  # the VMs' network takes no vlan
    assert plan.resources(spec, plan.sites[0]) == "{cluster='gros'}/nodes=2+nodes=1+slash_22=1,walltime=1:00:00"
    # without sizes (a preview that could not read the reference API): one node per VM at most
    assert make_plan(spec, None).resources(spec, make_plan(spec, None).sites[0]).startswith("{cluster='gros'}/nodes=5+")
    assert split_nodes(spec, plan.sites[0], ["gros-1.nancy.grid5000.fr", "gros-2.nancy.grid5000.fr", "grisou-1.nancy.grid5000.fr"]) == {
        0: ["gros-1.nancy.grid5000.fr", "gros-2.nancy.grid5000.fr"],
        1: ["grisou-1.nancy.grid5000.fr"],
    }


def test_machine_facts_are_read(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   2097152 kB\n")
    assert machine.memory_available_mb(str(meminfo)) == 2048
    assert machine.memory_available_mb(str(tmp_path / "none")) is None
    assert machine.qemu_resident_mb("/nowhere/at/all/") == 0
