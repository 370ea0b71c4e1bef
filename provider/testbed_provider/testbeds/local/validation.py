"""The local backend's own Check rules (the generic ones live in the resource layer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...common.results import CheckFailure
from ...hosts.vm import machine
from ...hosts.vm.image import cached_image
from ..base import ReservationSpec
from .addressing import EXPERIMENT_RANGE, MANAGEMENT, capacity, default_cidr, parse_cidr
from .naming import HOSTNAME_MAX, host_base_name, joins

MAX_HOSTS = 1000
# Options other backends accept, so the message can say whose option it is.
FOREIGN_OPTIONS = {"cluster": "Grid'5000"}
MEMORY_MARGIN_MB = 1024  # left to this machine (the provider, Ansible, the engine) when sizing VMs
QEMU_OVERHEAD_MB = 128  # per VM, beyond its guest memory (QEMU itself, TCG's translation cache)


@dataclass(frozen=True)
class VmFacts:
    """What this machine offers VMs, read once per Check (see `vm_facts`)."""

    memory_available_mb: Optional[int]  # MemAvailable plus what this reservation's own VMs hold now
    missing_run_tools: list[tuple[str, str]] = field(default_factory=list)  # (tool, Debian package)
    missing_build_tools: list[tuple[str, str]] = field(default_factory=list)  # needed when the image is not built yet
    image_cached: bool = True
    image_problems: dict[str, Optional[str]] = field(default_factory=dict)  # a group's image path → why unusable


def vm_facts(spec: ReservationSpec, own_marker: str) -> Optional[VmFacts]:
    """This machine's facts for `spec`'s VM groups (None when it has none). `own_marker`: the
    start of the run dirs of reservations named like this one, whose running VMs an update gets
    back (so a reservation's own VMs never make its next Check fail)."""
    groups = [g for g in spec.machines if g.kind == "vm" and g.vm is not None]
    if not groups:
        return None
    available = machine.memory_available_mb()
    if available is not None:
        available += machine.qemu_resident_mb(own_marker)
    images = {g.vm.image for g in groups if g.vm is not None and g.vm.image}
    return VmFacts(
        available,
        machine.missing_tools(building=False),
        [t for t in machine.missing_tools(building=True) if t not in machine.missing_tools(building=False)],
        cached_image() is not None,
        {path: machine.image_problem(path) for path in images},
    )


def validate(spec: ReservationSpec, facts: Optional[VmFacts] = None) -> list[CheckFailure]:
    """Pure: machine options, host name shape, experiment cidrs, total size; VM groups against
    `facts` (what this machine offers VMs)."""
    failures: list[CheckFailure] = []
    fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
    _validate_vms(spec, facts, fail)

    total = 0
    seen_bases: dict[str, int] = {}
    for g, group in enumerate(spec.machines):
        total += max(group.count, 0)
        for key in sorted(group.options):
            owner = FOREIGN_OPTIONS.get(key)
            if owner:
                fail(f"machines[{g}].{key}", f"`{key}` is a {owner} option; the local backend does not accept it")
            else:
                fail(f"machines[{g}].{key}", f"`{key}` is not a local backend option; the local backend accepts no machine options")
        if not group.roles:
            continue
        base = host_base_name(group.roles[0])
        longest = f"{base}-{max(group.count, 1)}"
        if len(longest) > HOSTNAME_MAX:
            fail(
                f"machines[{g}].roles",
                f"host names made from role `{group.roles[0]}` (e.g. `{longest[:20]}…`) "
                f"would be longer than {HOSTNAME_MAX} characters; use a shorter first role",
            )
        folded = base.lower()
        if folded in seen_bases and host_base_name(spec.machines[seen_bases[folded]].roles[0]) != base:
            fail(
                f"machines[{g}].roles",
                f"first role `{group.roles[0]}` differs only in case from machines[{seen_bases[folded]}]'s; "
                "host names would clash (SSH matches host names case-insensitively)",
            )
        seen_bases.setdefault(folded, g)

    if total > MAX_HOSTS:
        fail("machines", f"{total} hosts requested; the local backend runs at most {MAX_HOSTS} on one machine")

    explicit = []
    for k, net in enumerate(spec.networks):
        if net.cidr is not None:
            parsed = parse_cidr(net.cidr, k)
            if parsed is not None:
                explicit.append((k, parsed))
    for k, net in enumerate(spec.networks):
        path = f"networks[{k}].cidr"
        cidr = parse_cidr(net.cidr, k)
        if cidr is None:
            if net.cidr is None:
                fail(path, f"networks beyond the 256th have no default cidr; give networks[{k}] a cidr within {EXPERIMENT_RANGE}")
            continue  # malformed: the resource layer reports it
        if not cidr.subnet_of(EXPERIMENT_RANGE):
            hint = f" ({MANAGEMENT} is the management network)" if cidr.overlaps(MANAGEMENT) else ""
            fail(
                path,
                f"`{cidr}` must lie within {EXPERIMENT_RANGE}, the benchmarking range the local backend uses "
                f"only inside its namespaces{hint}",
            )
            continue
        if net.cidr is None:
            for j, other in explicit:
                if cidr.overlaps(other):
                    fail(
                        path,
                        f"the default cidr `{default_cidr(k)}` of networks[{k}] overlaps networks[{j}].cidr `{other}`; "
                        f"give networks[{k}] a cidr",
                    )
        members = sum(g.count for g in spec.machines if g.roles and joins(g.roles, net.roles))
        if capacity(cidr) < members + 1:
            fail(
                path,
                f"`{cidr}` has {capacity(cidr)} host address(es) but {members} host(s) join it "
                "and one spare is required; use a larger network",
            )
    return failures


def _validate_vms(spec: ReservationSpec, facts: Optional[VmFacts], fail) -> None:
    """Tools, images and memory for the `vm` groups."""
    vm_groups = [(g, group) for g, group in enumerate(spec.machines) if group.kind == "vm" and group.vm is not None]
    if not vm_groups or facts is None:
        return
    first = vm_groups[0][0]
    needs_build = any(group.vm.image is None for _, group in vm_groups if group.vm is not None) and not facts.image_cached
    missing = facts.missing_run_tools + (facts.missing_build_tools if needs_build else [])
    if missing:
        tools = ", ".join(tool for tool, _ in missing)
        fail(
            f"machines[{first}].kind",
            f"`vm` machines need {tools} on this machine (not found{'; the VM image is not built yet' if needs_build else ''}); "
            f"install {machine.packages(missing)} (`make setup` or `apt-get install {machine.packages(missing)}`)",
        )
    for g, group in vm_groups:
        assert group.vm is not None
        if group.vm.image:
            problem = facts.image_problems.get(group.vm.image)
            if problem:
                fail(f"machines[{g}].image", problem)
    if facts.memory_available_mb is None:
        return
    can_give = facts.memory_available_mb - MEMORY_MARGIN_MB
    total = 0
    for g, group in vm_groups:
        assert group.vm is not None
        need = group.count * (group.vm.memory_mb + QEMU_OVERHEAD_MB)
        total += need
        if total > can_give:
            prop = "flavour" if group.vm.flavour else "memoryMb"
            size = f"flavour `{group.vm.flavour}`, {group.vm.memory_mb} MB" if group.vm.flavour else f"{group.vm.memory_mb} MB"
            before = f" (with the groups before it: {total} MB)" if total != need else ""
            fail(
                f"machines[{g}].{prop}",
                f"{group.count} VM(s) of {size} need {need} MB{before} (guest memory plus ~{QEMU_OVERHEAD_MB} MB of QEMU each) "
                f"but this machine can give {max(can_give, 0)} MB (MemAvailable {facts.memory_available_mb} MB minus a "
                f"{MEMORY_MARGIN_MB} MB margin); use a smaller flavour or fewer VMs",
            )
            return
