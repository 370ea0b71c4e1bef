"""`testbed:index:Reservation`: machines and networks on the stack's testbed.

Inputs keep EnOSlib's vocabulary: `machines` (groups of `count` hosts carrying `roles`) and
`networks` (joined by the hosts of some roles). Outputs give every later step what it needs
from stack state alone: `hosts`, `roles`, the public `ssh` connection data, the `inventory`
(only its private key is secret) and `sshPrivateKey` (secret). The backend's own
bookkeeping (namespaces, pids, job ids) is kept in the `testbedState` output, which the schema
does not expose.

Changes: `machines` are reconciled in place (hosts added, removed or repaired); `name` and
`networks` replace the reservation, releasing the old one first (the same nodes cannot be held
twice on a real testbed).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import UNKNOWN, Secret, has_unknowns, reveal
from ..protocol.engine_log import WARNING
from ..protocol.errors import PartialFailure, ResourceFailure
from ..testbeds import make_testbed
from ..testbeds.base import MachineGroup, NetworkSpec, ReservationError, ReservationSpec, VmSize, hosts_summary
from ..typed.check import check_inputs
from ..typed.model import input_names
from .base import CheckResult, PlannedHosts, ReadResult, ResourceController
from .diff import DiffResult, Kind, diff_inputs
from .reservation_schema import DEFAULT_FLAVOUR, FLAVOURS, ReservationArgs
from .steps import declassify

# Ansible's implicit groups: a role with these names would silently mean something else.
RESERVED_ROLES = {"all", "ungrouped"}
# Machine-group options a backend may accept (each backend's validate() says which it does);
# the others (`roles`, `count`, `vars`: the group's Ansible host variables; the kind and a VM's
# size and image, typed fields of the spec) are never a backend's.
BACKEND_OPTIONS = {"cluster", "site", "walltime", "environment", "hosts", "nodeType", "start"}
VM_KEYS = ("kind", "flavour", "cores", "memoryMb", "image")
INPUT_KEYS = input_names(ReservationArgs)
DERIVED = ("addresses", "hostAddresses")  # outputs computed from the state alone
COMPUTED = ("hosts", "roles", "ssh", "inventory", "sshPrivateKey", "testbedState")


class Reservation(ResourceController):
    token = "testbed:index:Reservation"

    def declassify(self, props: dict[str, Any]) -> None:
        # Stacks made before the inventory's key alone was secret hold the whole inventory as
        # a secret: its host names must not become redacted words either.
        declassify(props)

    # ---- Check -------------------------------------------------------------------------------

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs = {k: v for k, v in news.items() if v is not None}
        defaulted = "name" not in inputs
        if defaulted:
            inputs["name"] = olds.get("name") or name
        failures = validate_inputs(inputs)
        if defaulted:  # the user never wrote `name`: say where the value came from
            failures = [
                CheckFailure(
                    f.property, f"{f.reason} (the name defaults to the resource name `{inputs['name']}`; pass `name` to choose another)"
                )
                if f.property == "name"
                else f
                for f in failures
            ]
        if not failures and not has_unknowns(inputs):
            testbed = make_testbed(self.ctx.config.backend, self.ctx.cancelled, self.ctx.config)
            spec = spec_from_inputs(inputs)
            failures = testbed.validate(spec)
            if not failures and urn:
                self._remember_plan(urn, spec, testbed.planned_names(spec))
            if not failures:
                failures = await testbed.validate_remote(spec)
        return CheckResult(inputs, failures)

    def _remember_plan(self, urn: str, spec: ReservationSpec, names: Optional[list[str]]) -> None:
        """Keep the hosts the inputs describe: a step's first preview checks its pattern
        against them while this reservation's inventory is still unknown."""
        roles = [tuple(g.roles) for g in spec.machines for _ in range(g.count)]
        hosts = tuple(zip(names if names and len(names) == len(roles) else [None] * len(roles), roles))
        self.ctx.planned[urn] = PlannedHosts(hosts)

    # ---- Diff --------------------------------------------------------------------------------

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = diff_inputs(old_inputs or _inputs_of(outputs), news, replace_keys={"name", "networks"})
        result.delete_before_replace = True
        missing = _missing_hosts(outputs, news)
        if missing and not any(p.startswith("machines") for p in result.detailed):
            # Hosts were lost outside Pulumi (seen by refresh): an update recreates them.
            result.detailed["machines"] = Kind.UPDATE
        if not result.detailed and "testbedState" in outputs and any(k not in outputs for k in DERIVED):
            # A state written before some outputs existed (`addresses`): an in-place update
            # recomputes them from the state, touching nothing on the testbed.
            result.detailed[next(k for k in DERIVED if k not in outputs)] = Kind.UPDATE
        return result

    # ---- Create / Read / Update / Delete ----------------------------------------------------

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            await self._forecast(urn, inputs)
            return "", {**inputs, "backend": self.ctx.config.backend, **{k: UNKNOWN for k in COMPUTED}}
        spec = spec_from_inputs(inputs)
        progress = self.ctx.log.status(urn)
        started = time.monotonic()
        async with deadline(self.ctx.cancelled, timeout) as limit:
            testbed = make_testbed(self.ctx.config.backend, limit.stop, self.ctx.config)
            total = sum(g.count for g in spec.machines)
            await progress(f"reserving {total} host(s) on the {testbed.name} testbed")
            try:
                state = await testbed.reserve(spec, owner=urn, progress=progress)
            except ReservationError as err:
                if err.state is None:
                    raise ResourceFailure(limit.explain(f"reservation failed, nothing was kept: {err}")) from err
                raise PartialFailure(
                    limit.explain(
                        f"reservation failed; what was created is recorded in the stack (`pulumi destroy` "
                        f"releases it, `pulumi up` retries): {err}"
                    ),
                    err.state["id"],
                    outputs_from_state(err.state, inputs),
                ) from err
        state["reservedSeconds"] = round(time.monotonic() - started, 1)  # to SSH-ready (`testbed compare`)
        await self.ctx.log.info(urn, f"reserved {_summary(state)} on the {state['backend']} testbed in {state['reservedSeconds']:.1f} s")
        return state["id"], outputs_from_state(state, inputs)

    async def _forecast(self, urn: str, inputs: dict[str, Any]) -> None:
        """Preview on a queued testbed: say when the reservation could start."""
        if has_unknowns(inputs) or validate_inputs(inputs):
            return
        spec = spec_from_inputs(inputs)
        testbed = make_testbed(self.ctx.config.backend, self.ctx.cancelled, self.ctx.config)
        if testbed.validate(spec):
            return
        found = await testbed.forecast(spec)
        if found is not None:
            warning, text = found
            if warning:
                await self.ctx.log.log(WARNING, text, urn=urn)
            else:
                await self.ctx.log.info(urn, text)

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        if "testbedState" not in outputs:
            raise ResourceFailure("importing an existing Reservation is not supported; create it with `pulumi up`")
        state = state_from_outputs(outputs)
        live = await make_testbed(state["backend"], self.ctx.cancelled, self.ctx.config).inspect(state)
        if live is None:
            return None
        live.setdefault("ssh", state["ssh"])
        recorded_inputs = inputs or _inputs_of(outputs)
        lost = _lost_hosts(state, live)
        if not lost:
            return ReadResult(id, outputs_from_state(live, recorded_inputs), recorded_inputs)
        # What refresh found is what the state records now: inputs that would make exactly
        # these hosts (a group's count as many as are left), so the next preview shows the
        # drift as `machines[1].count: 0 => 1` rather than the whole list, and its update says
        # which hosts it recreates.
        await self.ctx.log.info(
            urn, f"lost outside Pulumi: {', '.join(lost)}; the next `pulumi up` recreates {'it' if len(lost) == 1 else 'them'}"
        )
        live_inputs = {**recorded_inputs, "machines": _live_machines(live, recorded_inputs.get("machines"))}
        outputs = outputs_from_state(live, live_inputs)
        outputs["testbedState"] = {**outputs["testbedState"], "lostHosts": lost}
        return ReadResult(id, outputs, live_inputs)

    async def update(
        self,
        id: str,
        urn: str,
        outputs: dict[str, Any],
        old_inputs: dict[str, Any],
        news: dict[str, Any],
        preview: bool,
        timeout: float = 0,
    ) -> dict[str, Any]:
        if _same_machines(old_inputs or _inputs_of(outputs), news) and "testbedState" in outputs and not _missing_hosts(outputs, news):
            # Only host variables changed: nothing to do on the testbed (on g5k a reconcile
            # would even make the jobs anew), the inventory is recomputed.
            return outputs_from_state(state_from_outputs(outputs), news)
        if preview:
            lost = reveal(outputs.get("testbedState") or {}).get("lostHosts") or []
            if lost:
                await self.ctx.log.info(urn, f"recreates {', '.join(lost)} (lost outside Pulumi, seen by refresh)")
            keep = {"sshPrivateKey": outputs.get("sshPrivateKey", UNKNOWN)}
            return {**news, "backend": outputs.get("backend"), **{k: UNKNOWN for k in COMPUTED}, **keep}
        state = state_from_outputs(outputs)
        started = time.monotonic()
        async with deadline(self.ctx.cancelled, timeout) as limit:
            testbed = make_testbed(state["backend"], limit.stop, self.ctx.config)
            try:
                new_state = await testbed.reconcile(state, spec_from_inputs(news), self.ctx.log.status(urn))
            except ReservationError as err:
                raise PartialFailure(
                    limit.explain(f"updating the reservation failed; its current hosts are recorded: {err}"),
                    id,
                    outputs_from_state(err.state or state, news),
                ) from err
        if "reservedSeconds" in state:  # the creation's, kept across updates
            new_state.setdefault("reservedSeconds", state["reservedSeconds"])
        await self.ctx.log.info(urn, f"reservation {id} now holds {_summary(new_state)} (updated in {time.monotonic() - started:.1f} s)")
        return outputs_from_state(new_state, news)

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        if "testbedState" not in outputs:
            return  # never fully created: nothing recorded to release
        state = state_from_outputs(outputs)
        async with deadline(self.ctx.cancelled, timeout) as limit:
            testbed = make_testbed(state["backend"], limit.stop, self.ctx.config)
            try:
                await testbed.release(state, self.ctx.log.status(urn))
            except ReservationError as err:
                raise ResourceFailure(
                    limit.explain(f"releasing the reservation failed (it stays in the stack; retry `pulumi destroy`): {err}")
                ) from err
            described = testbed.describe(state)
        await self.ctx.log.info(urn, f"released reservation {id} ({described})")
        # The `testbed` CLI's cached copy of the key (and its ssh_config, sockets) serves no
        # reservation any more. Best effort: a cache problem never fails a release.
        try:
            import asyncio

            from ..cli.cache import forget
            from ..remote.inventory import parse

            await asyncio.to_thread(forget, parse(reveal(outputs.get("inventory"))))
        except ValueError:  # no usable inventory recorded: no key the CLI could have cached
            pass
        except OSError as err:
            await self.ctx.log.log(WARNING, f"could not remove the testbed CLI's files of {id}: {err}", urn=urn)


# ---- input rules shared by every backend ---------------------------------------------------------


def validate_inputs(inputs: dict[str, Any]) -> list[CheckFailure]:
    """Backend-independent rules; each failure names the offending property path. The typed
    definition checks shapes, types, ranges and names; what stays here is what no type says."""
    failures = check_inputs(ReservationArgs, inputs, "Reservation").failures
    fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
    machines = inputs.get("machines")
    known_roles: Optional[set[str]] = set()
    if not isinstance(machines, list):
        known_roles = None
    else:
        for i, group in enumerate(machines):
            _vm_rules(f"machines[{i}]", group, fail)
            roles = _group_roles(f"machines[{i}]", group, fail)
            if roles is None or known_roles is None:
                known_roles = None
            else:
                known_roles |= roles
    networks = inputs.get("networks", [])
    if not isinstance(networks, list):
        return failures
    ids: set[str] = set()
    cidrs: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for i, net in enumerate(networks):
        path = f"networks[{i}]"
        if not isinstance(net, dict):
            continue
        net_id = net.get("id")
        if isinstance(net_id, str) and net_id in ids:
            fail(f"{path}.id", f"duplicate network id `{net_id}`")
        elif isinstance(net_id, str):
            ids.add(net_id)
        roles = net.get("roles")
        if isinstance(roles, list) and known_roles is not None:
            for role in roles:
                if isinstance(role, str) and role not in known_roles:
                    fail(f"{path}.roles", f"unknown role `{role}`: no machine group has it (roles: {', '.join(sorted(known_roles))})")
        cidr = net.get("cidr")
        if not isinstance(cidr, str):
            continue
        try:
            parsed = ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            fail(f"{path}.cidr", f"malformed CIDR `{cidr}`: {err}")
            continue
        for j, other in cidrs:
            if parsed.version == other.version and parsed.overlaps(other):
                fail(f"{path}.cidr", f"`{cidr}` overlaps networks[{j}].cidr `{other}`")
        cidrs.append((i, parsed))
    return failures


def _vm_rules(path: str, group: Any, fail) -> None:
    """A VM's size: a flavour, or cores and memoryMb, never both; none of it on a `host` group."""
    if not isinstance(group, dict):
        return
    given = [k for k in ("flavour", "cores", "memoryMb", "image") if group.get(k) is not None]
    if group.get("kind", "host") == "host":
        for key in given:
            fail(f"{path}.{key}", f"`{key}` is a VM setting; it needs `kind: vm` (this group's kind is `host`)")
        return
    explicit = [k for k in ("cores", "memoryMb") if group.get(k) is not None]
    if group.get("flavour") is not None and explicit:
        fail(
            f"{path}.{explicit[0]}",
            f"give either `flavour` or `cores`/`memoryMb`, not both (flavour `{group['flavour']}` already sets {' and '.join(explicit)})",
        )


def vm_size(group: dict[str, Any]) -> Optional[VmSize]:
    """A `vm` group's size and image from its inputs (flavour, else cores/memoryMb, else tiny)."""
    if group.get("kind", "host") != "vm":
        return None
    flavour = group.get("flavour")
    cores, memory = FLAVOURS.get(flavour or DEFAULT_FLAVOUR, FLAVOURS[DEFAULT_FLAVOUR])
    if not flavour:
        cores = int(group.get("cores") or cores)
        memory = int(group.get("memoryMb") or memory)
    return VmSize(cores=cores, memory_mb=memory, flavour=flavour, image=group.get("image"))


def _group_roles(path: str, group: Any, fail) -> Optional[set[str]]:
    """A machine group's roles, reserved and duplicate ones reported; None when unknown yet."""
    roles = group.get("roles") if isinstance(group, dict) else None
    if not isinstance(roles, list):
        return None if roles is UNKNOWN or group is UNKNOWN else set()
    seen: set[str] = set()
    for role in roles:
        if role is UNKNOWN:
            return None
        if role in RESERVED_ROLES:
            fail(f"{path}.roles", f"`{role}` is reserved by Ansible; choose another role name")
        elif role in seen:
            fail(f"{path}.roles", f"duplicate role `{role}`")
        if isinstance(role, str):
            seen.add(role)
    return seen


# ---- mapping between inputs, backend state and outputs -------------------------------------------


def spec_from_inputs(inputs: dict[str, Any]) -> ReservationSpec:
    plain = reveal(inputs)
    machines = [
        MachineGroup(
            roles=list(g["roles"]),
            count=int(g["count"]),
            options={k: v for k, v in g.items() if k not in ("roles", "count", "vars", *VM_KEYS) and v is not None},
            kind=g.get("kind") or "host",
            vm=vm_size(g),
        )
        for g in plain["machines"]
    ]
    networks = [NetworkSpec(id=n["id"], roles=n.get("roles"), cidr=n.get("cidr")) for n in plain.get("networks") or []]
    return ReservationSpec(name=plain["name"], machines=machines, networks=networks)


def _group_index(state_host: dict[str, Any], groups: list[Any]) -> Optional[int]:
    """The machine group a host belongs to (by the group index the backend recorded; by its
    roles for states written before that)."""
    index = state_host.get("group")
    if not isinstance(index, int) or not 0 <= index < len(groups):
        index = next(
            (k for k, g in enumerate(groups) if isinstance(g, dict) and list(g.get("roles") or []) == list(state_host["roles"])), None
        )
    return index


def _group_vars(state_host: dict[str, Any], machines: Any) -> dict[str, Any]:
    """The `vars` of the machine group a host belongs to."""
    groups = reveal(machines) if isinstance(reveal(machines), list) else []
    index = _group_index(state_host, groups)
    group = groups[index] if index is not None else None
    value = group.get("vars") if isinstance(group, dict) else None
    return dict(value) if isinstance(value, dict) else {}


def outputs_from_state(state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    hosts = [
        {"name": h["name"], "address": h["address"], "roles": list(h["roles"]), "networks": list(h.get("networks", []))}
        for h in state["hosts"]
    ]
    host_vars = {h["name"]: _group_vars(h, inputs.get("machines")) for h in state["hosts"]}
    roles: dict[str, list[str]] = {}
    for h in hosts:
        for role in h["roles"]:
            roles.setdefault(role, []).append(h["name"])
    addresses, host_addresses = _addresses(hosts)
    ssh = state["ssh"]
    public_ssh = {k: ssh[k] for k in ("user", "port", "knownHosts", "proxyCommand", "publicKey") if k in ssh}
    key = Secret(ssh["privateKey"])
    inventory = {
        "hosts": [
            {
                **h,
                "user": s.get("user") or ssh["user"],  # a static host may name its own user and port
                "port": s.get("port") or ssh["port"],
                **({"vars": host_vars[h["name"]]} if host_vars[h["name"]] else {}),
            }
            for h, s in zip(hosts, state["hosts"])
        ],
        "groups": roles,
        "ssh": {**public_ssh, "privateKey": key},
    }
    private_state = {**state, "ssh": public_ssh}
    return {
        **{k: v for k, v in inputs.items() if k in INPUT_KEYS},
        "backend": state["backend"],
        "hosts": hosts,
        "roles": roles,
        "addresses": addresses,
        "hostAddresses": host_addresses,
        "ssh": public_ssh,
        "inventory": inventory,
        "sshPrivateKey": key,
        "testbedState": private_state,
    }


# The key of the network SSH reaches the hosts on (a host's `address`: the local testbed's
# management network, Grid'5000's production network) in `addresses` and `hostAddresses`. No
# network id can take it: ids start with a letter.
SSH_NETWORK = "_ssh"


def _addresses(hosts: list[dict[str, Any]]) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, str]]]:
    """`addresses` (network id → role → the addresses of that role's hosts on it, in host
    order) and `hostAddresses` (host → network id → its address there), both with `_ssh`."""
    by_network: dict[str, dict[str, list[str]]] = {}
    by_host: dict[str, dict[str, str]] = {}
    for h in hosts:
        mine = {SSH_NETWORK: h["address"]}
        for n in h["networks"]:
            if isinstance(n, dict) and isinstance(n.get("id"), str) and n.get("address"):
                mine.setdefault(n["id"], n["address"])
        by_host[h["name"]] = mine
        for net, address in mine.items():
            for role in h["roles"]:
                by_network.setdefault(net, {}).setdefault(role, []).append(address)
    return by_network, by_host


def state_from_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    state = reveal(outputs["testbedState"])
    state["ssh"] = {**state.get("ssh", {}), "privateKey": reveal(outputs.get("sshPrivateKey"))}
    return state


def _summary(state: dict[str, Any]) -> str:
    return hosts_summary([h["name"] for h in state["hosts"]])


def _inputs_of(outputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in outputs.items() if k in INPUT_KEYS}


def _same_machines(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two inputs ask the testbed for the same thing (they may differ in `vars`)."""
    if has_unknowns(new) or has_unknowns(old):
        return False
    try:
        return spec_from_inputs(old) == spec_from_inputs(new)
    except (KeyError, TypeError, ValueError):
        return False


def _lost_hosts(recorded: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Hosts the state listed (or had already found lost) that are not alive any more."""
    alive = {h["name"] for h in live["hosts"]}
    before = [h["name"] for h in recorded.get("hosts", [])] + list(recorded.get("lostHosts") or [])
    return sorted(set(before) - alive, key=before.index)


def _live_machines(state: dict[str, Any], machines: Any) -> Any:
    """`machines` with each group's count set to the hosts of that group still alive."""
    groups = reveal(machines)
    if not isinstance(groups, list):
        return machines
    counts = [0] * len(groups)
    for h in state["hosts"]:
        index = _group_index(h, groups)
        if index is not None:
            counts[index] += 1
    return [{**g, "count": counts[k]} if isinstance(g, dict) else g for k, g in enumerate(machines)]


def _missing_hosts(outputs: dict[str, Any], news: dict[str, Any]) -> bool:
    hosts, machines = outputs.get("hosts"), news.get("machines")
    if not isinstance(hosts, list) or has_unknowns(machines) or not isinstance(machines, list):
        return False
    try:
        wanted = sum(int(reveal(g)["count"]) for g in machines)
    except (KeyError, TypeError, ValueError):
        return False
    return len(hosts) != wanted
