"""`testbed:services:Netem`: delay, jitter, rate and loss between hosts (EnOSlib's Netem, NetemHTB,
AccurateNetemHTB) with tc on the hosts' experiment interfaces.

The inputs and the inventory make a plan (`plan_of`): per host, the devices it shapes and one
class per constrained destination host (services.netem turns it into tc commands). Up, in order:
probe every host that will change for the kernel features its constraints use (nothing is
applied while any host lacks one), with `accurate` measure the base round trips, run each
host's script (one run_shell for all), and when a host fails, remove what the others applied
(or restore what they had, on an update). State (`deployed`, a hidden output) records per host
the commands it ran and what they created, so an update re-runs exactly the hosts whose
commands change and destroy removes exactly what was created. Then, with `validate`, fping (or
ping) measures the round trips between the constrained hosts: the `validation` output.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure, HostResult
from ..protocol.codec import UNKNOWN, has_unknowns, reveal
from ..protocol.errors import PartialFailure, ResourceFailure
from ..remote import PatternError, RemoteError, match_hosts, run_shell
from ..remote.patterns import warm_up as warm_up_patterns
from ..services import netem as tc
from ..typed.check import check_inputs, with_defaults
from ..typed.model import input_names
from .base import CheckResult, ReadResult, ResourceController
from .diff import DiffResult, Kind, diff_inputs
from .netem_schema import NETEM
from .steps import _host_key, declassify, inventory_of, planned_verdict

INPUT_KEYS = input_names(NETEM.inputs)
GROUP_KEYS = ("defaultDelay", "defaultJitter", "defaultRate", "defaultLoss", "groups", "except", "constraints", "accurate")
SSH_NETWORK = "_ssh"
COMPUTED = ("applied", "validation")
ERROR_TAIL = 600
MEASURE_TIMEOUT = 120.0


@dataclass
class Measured:
    rtts: dict[tuple[str, str], tc.Rtt] = field(default_factory=dict)  # (src, address) → round trips
    tools: dict[str, str] = field(default_factory=dict)  # host → fping or ping
    errors: dict[str, str] = field(default_factory=dict)  # host → why it could not measure


class PlanError(Exception):
    def __init__(self, prop: str, reason: str):
        super().__init__(reason)
        self.prop = prop


@dataclass(frozen=True)
class Pair:
    """A measured direction: `src` pings `dst` at `address` on `network`."""

    src: str
    dst: str
    network: str
    address: str


@dataclass
class Plan:
    hosts: dict[str, tc.HostPlan]
    pairs: list[Pair]  # what validation measures
    identities: dict[str, str]  # host → its machine (a new machine re-applies)
    accurate: bool = False
    asked: dict[tuple[str, str, str], tc.Shape] = field(default_factory=dict)  # (src, dst, network) → as asked
    ingress: dict[tuple[str, str], tc.Shape] = field(default_factory=dict)  # (host, network) → what it receives
    base_needed: list[Pair] = field(default_factory=list)  # accurate: pairs whose base round trip is not known

    def commands(self, host: str) -> list[str]:
        return tc.host_commands(self.hosts[host])


def _shape(d: dict[str, Any], prefix: str = "") -> tc.Shape:
    key = (lambda k: prefix + k[:1].upper() + k[1:]) if prefix else (lambda k: k)
    rate = d.get(key("rate"))
    return tc.Shape(rate.lower() if rate else None, d.get(key("delay")), d.get(key("jitter")), d.get(key("loss")))


def _base_key(src: str, address: str) -> str:
    return f"{src}>{address}"


def plan_of(inputs: dict[str, Any], base_rtt: Optional[dict[str, float]] = None) -> Plan:
    """The plan of checked inputs whose inventory is known; PlanError names the property at fault.
    `base_rtt` (accurate): `src>address` → measured round trip, ms."""
    inventory = inventory_of(inputs)
    by_name = {h["name"]: h for h in inventory["hosts"]}
    order = [h["name"] for h in inventory["hosts"]]
    known = sorted({n["id"] for h in inventory["hosts"] for n in h.get("networks") or []})
    roles = sorted((inventory.get("groups") or {}).keys())
    nets = {h: {n["id"]: n for n in by_name[h].get("networks") or []} for h in by_name}
    keys = inventory.get("ssh", {}).get("knownHosts", "")

    def match(pattern: str, prop: str) -> list[str]:
        try:
            return match_hosts(inventory, pattern)
        except PatternError as err:
            raise PlanError(prop, str(err)) from err

    def network(value: Optional[str], prop: str) -> Optional[str]:
        if value is None:
            return None
        if value == SSH_NETWORK:
            raise PlanError(
                prop, "the network SSH uses is never shaped (the provider reaches the hosts over it): name an experiment network"
            )
        if value not in known:
            raise PlanError(prop, f"unknown network `{value}` (the reservation's experiment networks: {', '.join(known) or 'none'})")
        return value

    top_network = network(inputs.get("network"), "network")
    devices: dict[str, list[tc.Device]] = {}
    asked: dict[tuple[str, str, str], tc.Shape] = {}
    ingress: dict[tuple[str, str], tc.Shape] = {}
    involved: set[str] = set()
    scope: set[str] = set()  # the networks measured
    accurate = bool(inputs.get("accurate"))
    base_rtt = base_rtt or {}
    base_needed: list[Pair] = []

    hosts_model = reveal(inputs.get("hosts"))
    if hosts_model:
        taken: dict[tuple[str, str], int] = {}
        for i, item in enumerate(hosts_model):
            net_asked = network(item.get("network"), f"hosts[{i}].network") or top_network
            shape = _shape(item)
            for h in match(item["on"], f"hosts[{i}].on"):
                on = [net_asked] if net_asked else sorted(nets[h])
                if net_asked and net_asked not in nets[h]:
                    raise PlanError(f"hosts[{i}].on", f"host {h} is not on network `{net_asked}`")
                if not on:
                    raise PlanError(f"hosts[{i}].on", f"host {h} is on no experiment network")
                for net in on:
                    if (h, net) in taken:
                        raise PlanError(f"hosts[{i}].on", f"host {h} is matched by hosts[{taken[h, net]}] too (on `{net}`)")
                    taken[h, net] = i
                    iface = nets[h][net]["interface"]
                    devices.setdefault(h, []).append(tc.Device(iface, net, default=shape))
                    if item.get("symmetric"):
                        ifb = f"{tc.IFB_PREFIX}{sum(1 for d in devices[h] if d.via)}"
                        devices[h].append(tc.Device(iface, net, default=shape, via=ifb))
                        ingress[h, net] = shape
                    scope.add(net)
        # The star is measured between every two hosts of the shaped networks.
        involved = {h for h in order if any(n in scope for n in nets[h])}
        for (h, net), i in taken.items():
            for other in involved:
                if other != h and net in nets[other]:
                    asked[h, other, net] = _shape(hosts_model[i])
    else:
        pair_shape: dict[tuple[str, str, str], tuple[tc.Shape, str]] = {}

        def shared(a: str, b: str, net: Optional[str], prop: str) -> list[str]:
            if net:
                for h in (a, b):
                    if net not in nets[h]:
                        raise PlanError(prop, f"host {h} is not on network `{net}`")
                return [net]
            return sorted(set(nets[a]) & set(nets[b]))

        default = _shape(inputs, "default")
        if default.rate or default.delay or default.loss:
            groups = inputs.get("groups")
            excluded = inputs.get("except") or []
            for key, listed in (("groups", groups or []), ("except", excluded)):
                for r in listed:
                    if r not in roles:
                        raise PlanError(key, f"unknown role `{r}` (the reservation's roles: {', '.join(roles)})")
            chosen = [r for r in (groups or roles) if r not in excluded]
            members = {r: inventory["groups"][r] for r in chosen}
            for g1 in chosen:
                for g2 in chosen:
                    if g1 == g2:
                        continue
                    for a in members[g1]:
                        for b in members[g2]:
                            if a != b:
                                for net in shared(a, b, top_network, "network"):
                                    pair_shape[a, b, net] = (default, "the defaults")
                                    involved |= {a, b}
        explicit: dict[tuple[str, str, str], tuple[tc.Shape, int]] = {}
        for i, c in enumerate(reveal(inputs.get("constraints")) or []):
            prop = f"constraints[{i}]"
            net_asked = network(c.get("network"), f"{prop}.network") or top_network
            shape = _shape(c)
            srcs, dsts = match(c["src"], f"{prop}.src"), match(c["dst"], f"{prop}.dst")
            directions = [(srcs, dsts)] + ([(dsts, srcs)] if c.get("symmetric") else [])
            pairs_made = 0
            for from_hosts, to_hosts in directions:
                for a in from_hosts:
                    for b in to_hosts:
                        if a == b:
                            continue
                        for net in shared(a, b, net_asked, prop):
                            seen = explicit.get((a, b, net))
                            if seen and seen[0] != shape:
                                raise PlanError(prop, f"conflicts with constraints[{seen[1]}] from {a} to {b} on `{net}`")
                            explicit[a, b, net] = (shape, i)
                            pair_shape[a, b, net] = (shape, prop)
                            involved |= {a, b}
                            pairs_made += 1
            if not pairs_made:
                raise PlanError(prop, f"`{c['src']}` and `{c['dst']}` share no host pair on a common experiment network")
        for (a, b, net), (shape, _) in sorted(pair_shape.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][2], order.index(kv[0][1]))):
            asked[a, b, net] = shape
            scope.add(net)
            address = nets[b][net]["address"]
            applied = shape
            if accurate and shape.delay:
                base = base_rtt.get(_base_key(a, address))
                if base is None:
                    base_needed.append(Pair(a, b, net, address))
                    base = 0.0
                applied = tc.Shape(shape.rate, tc.us_text(max(0.0, shape.delay_us - base * 500)), shape.jitter, shape.loss)
            per_host = devices.setdefault(a, [])
            iface = nets[a][net]["interface"]
            device = next((d for d in per_host if d.name == iface and not d.via), None)
            rule = tc.Rule((b,), (address,), applied)
            if device is None:
                per_host.append(tc.Device(iface, net, rules=(rule,)))
            else:
                per_host[per_host.index(device)] = tc.Device(iface, net, rules=device.rules + (rule,))

    pairs = [
        Pair(a, b, net, nets[b][net]["address"])
        for a in order
        if a in involved
        for b in order
        if b in involved and b != a
        for net in sorted(set(nets[a]) & set(nets[b]) & scope)
    ]
    plans = {h: tc.HostPlan(h, tuple(devices[h])) for h in order if h in devices}
    identities = {h: hashlib.sha256(f"{h} {by_name[h]['address']} {_host_key(keys, h)}".encode()).hexdigest()[:16] for h in by_name}
    return Plan(plans, pairs, identities, accurate, asked, ingress, base_needed)


def expected(plan: Plan, pair: Pair, base_ms: Optional[float]) -> tuple[float, float]:
    """(round trip in ms, loss in %) the constraints ask of `pair` there and back: egress towards
    the other plus its ingress, each way; with `accurate`, each way at least half the base."""
    total_ms, keep = 0.0, 1.0
    for a, b in ((pair.src, pair.dst), (pair.dst, pair.src)):
        way_ms = 0.0
        for shape in (plan.asked.get((a, b, pair.network)), plan.ingress.get((b, pair.network))):
            if shape:
                way_ms += shape.delay_us / 1000
                keep *= 1 - (tc.loss_percent(shape.loss) / 100 if shape.loss else 0)
        if plan.accurate and base_ms is not None:
            way_ms = max(way_ms, base_ms / 2)
        total_ms += way_ms
    return round(total_ms, 3), round(100 * (1 - keep), 4)


def _summary(host_plan: tc.HostPlan) -> list[str]:
    lines = []
    for d in host_plan.devices:
        where = f"{d.name} (in, via {d.via})" if d.via else d.name
        if d.rules:
            for r in d.rules:
                lines.append(f"{where} → {', '.join(r.to_hosts)} ({', '.join(r.addresses)}): {r.shape.summary()}")
        else:
            lines.append(f"{where}: {d.default.summary()}")
    return lines


def applied_output(host_plan: tc.HostPlan) -> dict[str, Any]:
    """The `applied` output of one host."""

    def rule(k: int, hosts: tuple[str, ...], addresses: tuple[str, ...], s: tc.Shape) -> dict[str, Any]:
        out: dict[str, Any] = {"classid": f"1:{k:x}", "toHosts": list(hosts), "addresses": list(addresses), "rate": s.rate or tc.LINE_RATE}
        out.update({k2: v for k2, v in (("delay", s.delay), ("jitter", s.jitter), ("loss", s.loss)) if v})
        return out

    devices = []
    for d in host_plan.devices:
        rules = [rule(tc.DEFAULT_CLASS, (), (), d.default)]
        rules += [rule(k, r.to_hosts, r.addresses, r.shape) for k, r in enumerate(d.rules, tc.DEFAULT_CLASS + 1)]
        entry = {"device": d.name, "network": d.network, "direction": d.direction, "handle": tc.HANDLE, "rules": rules}
        if d.via:
            entry["via"] = d.via
        devices.append(entry)
    return {"devices": devices, "ifbs": list(host_plan.ifbs), "commands": len(tc.host_commands(host_plan)), "summary": _summary(host_plan)}


def _applied_of(record: dict[str, Any]) -> tc.Applied:
    return tc.Applied(tuple(record.get("devices") or ()), tuple(record.get("ingress") or ()), tuple(record.get("ifbs") or ()))


def _record(plan: Plan, host: str) -> dict[str, Any]:
    a = tc.Applied.of(plan.hosts[host])
    return {
        "commands": plan.commands(host),
        "devices": list(a.devices),
        "ingress": list(a.ingress),
        "ifbs": list(a.ifbs),
        "identity": plan.identities[host],
    }


def _changed(plan: Plan, deployed: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(hosts whose commands change, recorded hosts the plan no longer shapes)."""
    hosts = deployed.get("hosts") or {}
    change = [
        h for h in plan.hosts if (hosts.get(h) or {}).get("commands") != plan.commands(h) or hosts[h].get("identity") != plan.identities[h]
    ]
    gone = [h for h in hosts if h not in plan.hosts]
    return change, gone


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class Netem(ResourceController):
    token = NETEM.token

    @classmethod
    def warm_up(cls) -> None:
        warm_up_patterns()

    def declassify(self, props: dict[str, Any]) -> None:
        declassify(props)

    # ---- Check -------------------------------------------------------------------------------

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        checked = check_inputs(NETEM.inputs, news, "Netem")
        inputs, failures = checked.inputs, checked.failures
        fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
        hosts = reveal(inputs.get("hosts"))
        grouped = [k for k in GROUP_KEYS if inputs.get(k) is not None]
        if hosts is not None and grouped:
            fail("hosts", f"the per-host model (`hosts`) and the per-group model ({', '.join(f'`{k}`' for k in grouped)}) are exclusive")
        elif hosts is None and not any(inputs.get(k) is not None for k in ("defaultDelay", "defaultRate", "defaultLoss", "constraints")):
            fail(
                "hosts", "nothing to emulate: give `hosts` (the per-host model) or `constraints`/`defaultDelay`/`defaultRate`/`defaultLoss`"
            )
        if inputs.get("groups") is not None and inputs.get("except") is not None:
            fail("except", "`groups` and `except` are exclusive (EnOSlib's rule): list the roles to constrain, or those to leave out")
        if inputs.get("defaultJitter") is not None and inputs.get("defaultDelay") is None:
            fail("defaultJitter", "a jitter needs a `defaultDelay` to vary")
        for label, items in (("hosts", hosts), ("constraints", reveal(inputs.get("constraints")))):
            for i, item in enumerate(items or []):
                if not isinstance(item, dict):
                    continue
                if not any(item.get(k) for k in ("delay", "rate", "loss")):
                    fail(f"{label}[{i}]", "constrains nothing: give a `delay`, `rate` or `loss`")
                if item.get("jitter") and not item.get("delay"):
                    fail(f"{label}[{i}].jitter", "a jitter needs a `delay` to vary")
        for path, value in _values(inputs):
            if path.endswith(("loss", "Loss")) and isinstance(value, str) and value.endswith("%"):
                try:
                    if float(value[:-1]) > 100:
                        fail(path, f"must be at most 100% (got {value})")
                except ValueError:
                    pass
            if path.endswith(("rate", "Rate")) and isinstance(value, str):
                try:
                    if tc.rate_bits(value) <= 0:
                        fail(path, "must be above zero (a rate of 0 stops all traffic)")
                except ValueError:
                    pass
        if inputs.get("accurate") and hosts is not None:
            fail("accurate", "is for the per-group model (a base round trip is between two hosts)")
        inventory = inputs.get("inventory")
        if inventory is None:
            fail("inventory", "required: a Reservation's `inventory` output")
        elif failures:
            pass
        elif has_unknowns(inventory):
            plans = list(self.ctx.planned.values())
            for path, pattern in _patterns(inputs):
                error, _ = planned_verdict(pattern, plans)
                if error:
                    fail(path, error)
        elif not has_unknowns({k: v for k, v in inputs.items() if k not in ("triggers",)}):
            try:
                plan_of(inputs)
            except PlanError as err:
                fail(err.prop, str(err))
            except (KeyError, TypeError, ValueError) as err:
                fail("inventory", f"not a Reservation inventory ({err})")
        return CheckResult(inputs, failures)

    # ---- Diff --------------------------------------------------------------------------------

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old_inputs = old_inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        d = NETEM.inputs
        result = diff_inputs(with_defaults(d, old_inputs), with_defaults(d, news), replace_keys=())
        result.detailed = {p: k for p, k in result.detailed.items() if not p.startswith("inventory")}
        deployed = reveal(outputs.get("deployed")) or {}
        try:
            if has_unknowns(news):
                raise ValueError("unknown")
            plan = plan_of(news, deployed.get("baseRtt"))
        except (PlanError, KeyError, TypeError, ValueError):
            result.detailed.setdefault("applied", Kind.UPDATE)
            return result
        change, gone = _changed(plan, deployed)
        if change or gone or plan.base_needed:
            result.detailed["applied"] = Kind.UPDATE
        return result

    # ---- Create / Read / Update / Delete ----------------------------------------------------

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", {**inputs, **{k: UNKNOWN for k in COMPUTED}}
        rid = uuid.uuid4().hex[:12]
        return rid, await self._converge(urn, rid, inputs, {}, measure=True)

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
        changes = self.diff(outputs, old_inputs, news).detailed
        tops = {p.split(".")[0].split("[")[0] for p in changes}
        measure = bool(tops & {"applied", "triggers", "validate"})
        if not measure:
            return {**news, **{k: outputs[k] for k in (*COMPUTED, "deployed") if k in outputs}}  # recorded only
        if preview:
            return {**news, **{k: UNKNOWN for k in COMPUTED}, "deployed": outputs.get("deployed")}
        return await self._converge(urn, id, news, reveal(outputs.get("deployed")) or {}, measure=True, old=outputs)

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        if "deployed" not in outputs:
            raise ResourceFailure("importing a Netem is not supported; it is applied by `pulumi up`")
        return ReadResult(id, outputs, inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS})

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        deployed = reveal(outputs.get("deployed")) or {}
        records = deployed.get("hosts") or {}
        if not records or "inventory" not in outputs:
            return
        inputs = {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        present = set(match_hosts(inventory_of(inputs), "all"))
        hosts = [h for h in records if h in present]
        results = await self._run(urn, inputs, hosts, {h: tc.remove_script(_applied_of(records[h])) for h in hosts})
        bad = [r for r in results if r.status != "ok"]
        for r in bad:
            await self.ctx.log.warn(urn, f"{r.host}: could not remove the constraints ({_why(r)})")
        await self.ctx.log.info(urn, f"constraints removed from {len(hosts) - len(bad)} host(s)")

    # ---- converging -------------------------------------------------------------------------

    async def _converge(
        self, urn: str, rid: str, inputs: dict[str, Any], deployed: dict[str, Any], measure: bool, old: Optional[dict[str, Any]] = None
    ) -> dict[str, Any]:
        base_rtt = dict(deployed.get("baseRtt") or {})
        try:
            plan = plan_of(inputs, base_rtt)
        except PlanError as err:
            raise ResourceFailure(f"{err.prop}: {err}") from err
        records: dict[str, Any] = dict(deployed.get("hosts") or {})
        change, gone = _changed(plan, deployed)
        progress = self.ctx.log.status(urn)
        present = set(match_hosts(inventory_of(inputs), "all"))

        # 1. Probe every host that changes: nothing is applied while one lacks what it needs.
        if change:
            await progress(f"probing tc on {len(change)} host(s): {', '.join(change)}")
            results = await self._run(urn, inputs, change, {h: tc.probe_script(plan.hosts[h].needs()) for h in change}, quiet=True)
            problems = []
            mine = _boot_id()
            for r in results:
                if r.status != "ok":
                    problems.append(f"{r.host}: could not probe tc ({_why(r)})")
                    continue
                p = tc.parse_probe(r.stdout)
                if p.missing:
                    kernel = [m for m in p.missing if m in tc.FEATURES]
                    tools = [m for m in p.missing if m not in tc.FEATURES]
                    words = [f"this kernel has {tc.missing_phrase(kernel)}"] if kernel else []
                    words += [tc.missing_phrase(tools)] if tools else []
                    if kernel and p.boot_id and p.boot_id == mine:
                        words.append("the local testbed's namespace hosts share this machine's kernel: use `kind: vm` machines")
                    elif kernel:
                        words.append("load the modules (modprobe) or use machines whose kernel has them")
                    problems.append(f"{r.host}: " + "; ".join(words))
            if problems:
                raise self._unchanged(deployed, rid, old, "nothing was applied: " + " | ".join(problems))

        # 2. accurate: the base round trips of the pairs not measured yet (before their constraint).
        # A pair already shaped (accurate turned on, a pair newly constrained) is measured with
        # its hosts' constraints removed first: measured through them, the base is not a base.
        if plan.base_needed:
            shaped = sorted({h for p in plan.base_needed for h in (p.src, p.dst) if h in records and h in present})
            if shaped:
                await progress(f"removing the constraints of {', '.join(shaped)} to measure the base round trips")
                results = await self._run(urn, inputs, shaped, {h: tc.remove_script(_applied_of(records[h])) for h in shaped})
                for r in results:
                    if r.status == "ok":
                        records.pop(r.host)
                bad = [r for r in results if r.status != "ok"]
                if bad:
                    raise self._unchanged({**deployed, "hosts": records}, rid, old, _failed("removing the constraints", results))
                deployed = {**deployed, "hosts": records}
            measured = await self._measure(urn, inputs, plan.base_needed)
            for pair in plan.base_needed:
                rtt = measured.rtts.get((pair.src, pair.address))
                if rtt is None or rtt.avg_ms is None:
                    raise self._unchanged(
                        deployed,
                        rid,
                        old,
                        f"accurate: could not measure the base round trip from {pair.src} to {pair.dst} ({pair.address})",
                    )
                base_rtt[_base_key(pair.src, pair.address)] = rtt.avg_ms
            plan = plan_of(inputs, base_rtt)
            change, gone = _changed(plan, {**deployed, "baseRtt": base_rtt})

        # 3. Apply: every changed host's script at once; remove what was recorded on hosts left out.
        if change:
            await progress(f"applying the constraints on {len(change)} host(s)")
            scripts = {h: tc.apply_script(plan.hosts[h], _applied_of(records[h]) if h in records else None) for h in change}
            results = await self._run(urn, inputs, change, scripts)
            bad = [r for r in results if r.status != "ok"]
            if bad:
                ok = [r.host for r in results if r.status == "ok"]
                restored, left = await self._roll_back(urn, inputs, plan, ok, records, [r.host for r in bad])
                message = _failed("applying the constraints", results) + restored
                if left and old is None:  # a create whose undo failed somewhere: record what stays, for destroy
                    kept = {"hosts": {h: _record(plan, h) for h in left}}
                    raise PartialFailure(message, rid, {**inputs, "applied": {}, "validation": [], "deployed": kept})
                raise self._unchanged(deployed, rid, old, message)
            for h in change:
                records[h] = _record(plan, h)
        removable = [h for h in gone if h in present]
        if removable:
            results = await self._run(urn, inputs, removable, {h: tc.remove_script(_applied_of(records[h])) for h in removable})
            for r in results:
                if r.status != "ok":
                    await self.ctx.log.warn(urn, f"{r.host}: could not remove its former constraints ({_why(r)})")
        for h in gone:
            records.pop(h, None)
        if change:
            await self.ctx.log.info(urn, f"constraints applied on {', '.join(change)}")
        new_deployed = {"hosts": records, **({"baseRtt": base_rtt} if base_rtt else {})}

        # 4. Validation.
        validation: list[dict[str, Any]] = []
        eff = with_defaults(NETEM.inputs, inputs)
        if measure and eff.get("validate") and plan.pairs:
            await progress(f"measuring {len(plan.pairs)} round trip(s) with fping (or ping)")
            validation = await self._validate(urn, inputs, plan, base_rtt)
        return {
            **inputs,
            "applied": {h: applied_output(plan.hosts[h]) for h in plan.hosts},
            "validation": validation,
            "deployed": new_deployed,
        }

    def _unchanged(self, deployed: dict[str, Any], rid: str, old: Optional[dict[str, Any]], message: str) -> Exception:
        """A failure that left the hosts as `deployed` records (a create: nothing recorded)."""
        if old is None:
            return ResourceFailure(message)
        return PartialFailure(message, rid, {**old, "deployed": deployed})

    async def _roll_back(
        self, urn: str, inputs: dict[str, Any], plan: Plan, ok: list[str], records: dict[str, Any], failed: list[str]
    ) -> tuple[str, list[str]]:
        """After a failed apply: hosts that applied the new constraints get back what they had
        (nothing, on a create); a failed host's script removed what it added, and gets back its
        previous constraints too. Returns a sentence for the failure, and the hosts where the
        undo failed."""
        scripts: dict[str, str] = {}
        for h in ok:
            previous = records.get(h)
            undo = tc.remove_script(tc.Applied.of(plan.hosts[h]))
            if previous:
                undo += "\n".join(f"{c} >/dev/null 2>&1" for c in previous.get("commands") or ()) + "\n"
            scripts[h] = undo
        for h in failed:
            previous = records.get(h)
            if previous:
                scripts[h] = "\n".join(f"{c} >/dev/null 2>&1" for c in previous.get("commands") or ()) + "\necho restored\n"
        if not scripts:
            return "; nothing stays applied", []
        results = await self._run(urn, inputs, sorted(scripts), scripts, quiet=True)
        bad = [r.host for r in results if r.status != "ok"]
        if bad:
            return f"; could not undo the constraints on {', '.join(bad)}: check `tc qdisc show` there", [h for h in bad if h in ok]
        return f"; undone on {', '.join(sorted(scripts))}: the hosts are as before", []

    async def _measure(self, urn: str, inputs: dict[str, Any], pairs: list[Pair]) -> Measured:
        """(src, address) → its round trips, each host's tool, and why a host could not measure."""
        by_src: dict[str, list[str]] = {}
        for p in pairs:
            by_src.setdefault(p.src, [])
            if p.address not in by_src[p.src]:
                by_src[p.src].append(p.address)
        results = await self._run(
            urn, inputs, list(by_src), {h: tc.measure_script(a) for h, a in by_src.items()}, quiet=True, timeout=MEASURE_TIMEOUT
        )
        m = Measured()
        for r in results:
            if r.status != "ok":
                m.errors[r.host] = _why(r)
                continue
            tool, rtts = tc.parse_measure(r.stdout)
            m.tools[r.host] = tool
            for address, rtt in rtts.items():
                m.rtts[r.host, address] = rtt
        return m

    async def _validate(self, urn: str, inputs: dict[str, Any], plan: Plan, base_rtt: dict[str, float]) -> list[dict[str, Any]]:
        measured = await self._measure(urn, inputs, plan.pairs)
        rows = []
        for p in plan.pairs:
            base = base_rtt.get(_base_key(p.src, p.address)) if plan.accurate else None
            rtt_ms, loss = expected(plan, p, base)
            row: dict[str, Any] = {
                "src": p.src,
                "dst": p.dst,
                "network": p.network,
                "address": p.address,
                "tool": measured.tools.get(p.src, ""),
                "expectedRttMs": rtt_ms,
                "expectedLossPercent": loss,
            }
            if base is not None:
                row["baseRttMs"] = base
            rtt = measured.rtts.get((p.src, p.address))
            if rtt is None:
                row.update(sent=0, received=0, lossPercent=100.0, error=measured.errors.get(p.src, "no report for this address"))
            else:
                row.update(sent=rtt.sent, received=rtt.received, lossPercent=round(rtt.loss_percent, 2))
                row.update(
                    {k: v for k, v in (("rttMinMs", rtt.min_ms), ("rttAvgMs", rtt.avg_ms), ("rttMaxMs", rtt.max_ms)) if v is not None}
                )
            rows.append(row)
        for host, why in sorted(measured.errors.items()):
            await self.ctx.log.warn(urn, f"{host}: could not measure round trips ({why})")
        return rows

    # ---- remote helpers ---------------------------------------------------------------------

    async def _run(
        self, urn: str, inputs: dict[str, Any], hosts: list[str], command: Any, quiet: bool = False, **kw: Any
    ) -> list[HostResult]:
        if not hosts:
            return []
        async with deadline(self.ctx.cancelled, 0) as limit:
            try:
                return await run_shell(
                    inventory_of(inputs),
                    ":".join(hosts),
                    command,
                    become=bool(inputs.get("become")),
                    cancelled=limit.stop,
                    progress=None if quiet else self.ctx.log.status(urn),
                    **kw,
                )
            except (PatternError, RemoteError) as err:
                raise ResourceFailure(limit.explain(f"could not reach {', '.join(hosts)}: {err}")) from err


def _values(inputs: dict[str, Any], path: str = "") -> list[tuple[str, Any]]:
    """Every (path, leaf) of the revealed inputs but the inventory."""
    out: list[tuple[str, Any]] = []
    value = reveal(inputs)
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "inventory" or path:
                out += _values(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _values(v, f"{path}[{i}]")
    else:
        out.append((path, value))
    return out


def _patterns(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for i, item in enumerate(reveal(inputs.get("hosts")) or []):
        if isinstance(item, dict) and isinstance(item.get("on"), str):
            out.append((f"hosts[{i}].on", item["on"]))
    for i, c in enumerate(reveal(inputs.get("constraints")) or []):
        for k in ("src", "dst"):
            if isinstance(c, dict) and isinstance(c.get(k), str):
                out.append((f"constraints[{i}].{k}", c[k]))
    return out


def _why(r: HostResult) -> str:
    text = r.stderr.strip()[-ERROR_TAIL:] or r.stdout.strip()[-ERROR_TAIL:] or "(no output)"
    return f"{r.status if r.status != 'failed' else f'rc={r.rc}'}: {text}"


def _failed(what: str, results: list[HostResult]) -> str:
    bad = [r for r in results if r.status != "ok"]
    return f"{what} failed on {len(bad)} of {len(results)} host(s): " + "; ".join(f"{r.host} ({_why(r)})" for r in bad)
