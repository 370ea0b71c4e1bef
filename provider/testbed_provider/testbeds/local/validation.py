"""The local backend's own Check rules (the generic ones live in the resource layer)."""

from __future__ import annotations

from ...common.results import CheckFailure
from ..base import ReservationSpec
from .addressing import EXPERIMENT_RANGE, MANAGEMENT, capacity, default_cidr, parse_cidr
from .naming import HOSTNAME_MAX, host_base_name, joins

MAX_HOSTS = 1000
# Options other backends accept, so the message can say whose option it is.
FOREIGN_OPTIONS = {"cluster": "Grid'5000"}


def validate(spec: ReservationSpec) -> list[CheckFailure]:
    """Pure: machine options, host name shape, experiment cidrs, total size."""
    failures: list[CheckFailure] = []
    fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731

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
