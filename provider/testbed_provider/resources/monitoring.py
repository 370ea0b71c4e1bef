"""`testbed:services:Monitoring`: node-exporter agents and a Prometheus collector beside the experiment.

EnOSlib's TPGMonitoring as a resource, with real state: what runs where is recorded (`deployed`,
a hidden output: each agent's machine, the collector's, the UI forwarder's, the work directory),
so an update converges from it — an agent is started on a host added to the reservation and
stopped on one removed, and the collector re-reads its targets through its lifecycle API
(`/-/reload`, no restart, no data lost) — and destroy stops exactly what was started.

Up, in order: install what is missing (the hosts' Debian packages; on the local testbed they are
the machine's), start the agents (each listening on its monitoring-network address only, ready
once its port listens), write prometheus.yml and start Prometheus (ready once `/-/ready`
answers), start the UI forwarder when the UI host is another, then wait until every target has
been scraped healthy once. A failure after something started is recorded with what did
(the next `pulumi up` converges, `pulumi destroy` stops it), naming the hosts and, for
Prometheus, the end of its own log.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote

from ..common.deadlines import deadline
from ..common.results import CheckFailure, HostResult
from ..protocol.codec import UNKNOWN, has_unknowns, reveal
from ..protocol.errors import PartialFailure, ResourceFailure
from ..remote import PatternError, RemoteError, match_hosts, run_shell, stop_background
from ..remote.patterns import match_planned
from ..remote.patterns import warm_up as warm_up_patterns
from ..remote.scripts import BG_DIR
from ..services import prometheus as prom
from ..services import queries as q
from ..typed.check import check_inputs, with_defaults
from ..typed.model import input_names
from .base import CheckResult, ReadResult, ResourceController
from .diff import DiffResult, Kind, diff_inputs
from .monitoring_schema import MONITORING, SSH_NETWORK
from .steps import _host_key, declassify, inventory_of, planned_verdict

INPUT_KEYS = input_names(MONITORING.inputs)
REPLACE_KEYS = ("collector", "ui", "network", "port", "agentPort", "agentCollectors", "retention", "become")
RECONFIGURE_KEYS = {"agents", "scrapeInterval", "extraTargets"}  # converge in place
COMPUTED = ("prometheus", "targets", "agentHosts", "tunnel", "uiUrls", "queries", "deployed")
ERROR_TAIL = 600
POLL_S = 0.5  # seconds between two looks at the targets' health


class PlanError(Exception):
    def __init__(self, prop: str, reason: str):
        super().__init__(reason)
        self.prop = prop


@dataclass(frozen=True)
class Plan:
    """Which host does what, from the inputs and a known inventory."""

    collector: prom.Agent
    agents: tuple[prom.Agent, ...]
    ui: prom.Agent
    identities: dict[str, str]  # host → its machine (name, address, host key): a new machine re-deploys

    @property
    def hosts(self) -> list[str]:
        return sorted({self.collector.host, self.ui.host, *(a.host for a in self.agents)})


def _one(inventory: dict[str, Any], pattern: str, prop: str) -> str:
    try:
        names = match_hosts(inventory, pattern)
    except PatternError as err:
        raise PlanError(prop, str(err)) from err
    if len(names) != 1:
        raise PlanError(prop, f"must match exactly one host, `{pattern}` matches {len(names)}: {', '.join(names)}")
    return names[0]


def plan_of(inputs: dict[str, Any]) -> Plan:
    """The plan of checked inputs whose inventory is known; PlanError names the property at fault."""
    inventory = inventory_of(inputs)
    collector = _one(inventory, inputs["collector"], "collector")
    ui = _one(inventory, inputs["ui"], "ui") if inputs.get("ui") else collector
    try:
        agent_names = match_hosts(inventory, inputs.get("agents", "all"))
    except PatternError as err:
        raise PlanError("agents", str(err)) from err
    network = inputs.get("network") or SSH_NETWORK
    by_name = {h["name"]: h for h in inventory["hosts"]}
    known = sorted({n["id"] for h in inventory["hosts"] for n in h.get("networks") or []})

    def on_network(name: str) -> prom.Agent:
        h = by_name[name]
        roles = tuple(h.get("roles") or ())
        if network == SSH_NETWORK:
            return prom.Agent(name, h["address"], roles)
        for n in h.get("networks") or []:
            if n.get("id") == network:
                return prom.Agent(name, n["address"], roles)
        if network not in known:
            raise PlanError("network", f"unknown network `{network}` (the reservation's networks: {', '.join(known + [SSH_NETWORK])})")
        raise PlanError("network", f"host {name} is not on network `{network}`: the collector scrapes every agent over it")

    keys = inventory.get("ssh", {}).get("knownHosts", "")
    agents = tuple(on_network(n) for n in agent_names)
    hosts = {collector, ui, *agent_names}
    identities = {n: hashlib.sha256(f"{n} {by_name[n]['address']} {_host_key(keys, n)}".encode()).hexdigest()[:16] for n in hosts}
    return Plan(on_network(collector), agents, on_network(ui), identities)


def _stack_of(urn: str) -> str:
    parts = urn.split(":", 3)  # urn:pulumi:<stack>::<project>::…
    return parts[2].split("::", 1)[0] if len(parts) > 2 else ""


def queries(interval_s: float, port: int) -> dict[str, dict[str, str]]:
    """The `queries` output: services.queries' standard views (what `testbed plot` draws), each
    with a link graphing it in Prometheus' UI through the suggested tunnel's local port."""
    w = q.rate_window(interval_s)
    rx, tx = q.throughput("receive", w), q.throughput("transmit", w)
    exprs = {
        "throughput": (f"sum by (host, device) ({rx} + {tx})", "bits/s per host and interface, both directions added"),
        "receive": (f"sum by (host, device) ({rx})", "bits/s received per host and interface"),
        "transmit": (f"sum by (host, device) ({tx})", "bits/s sent per host and interface"),
        "cpu": (q.cpu_busy(w), "CPU busy % per host"),
        "memory": (q.memory_used(), "memory used per host (bytes)"),
    }
    return {
        k: {"expr": e, "url": f"http://127.0.0.1:{port}/graph?g0.expr={quote(e)}&g0.tab=0&g0.range_input=15m", "description": d}
        for k, (e, d) in exprs.items()
    }


class Monitoring(ResourceController):
    token = MONITORING.token

    @classmethod
    def warm_up(cls) -> None:
        warm_up_patterns()

    def declassify(self, props: dict[str, Any]) -> None:
        declassify(props)

    # ---- Check -------------------------------------------------------------------------------

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        checked = check_inputs(MONITORING.inputs, news, "Monitoring")
        inputs, failures = checked.inputs, checked.failures
        fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
        extra = reveal(inputs.get("extraTargets"))
        jobs: list[str] = [t["job"] for t in extra or [] if isinstance(t, dict) and isinstance(t.get("job"), str)]
        for job in sorted({j for j in jobs if jobs.count(j) > 1 or j in ("node", "prometheus")}):
            fail(
                "extraTargets",
                f"job `{job}` is {'taken by the agents or the collector' if job in ('node', 'prometheus') else 'given twice'}",
            )
        ports = with_defaults(MONITORING.inputs, inputs)
        if ports.get("port") == ports.get("agentPort") and isinstance(ports.get("port"), int):
            fail("agentPort", f"must differ from `port` ({ports['port']}): the collector host runs an agent too")
        inventory = inputs.get("inventory")
        if inventory is None:
            fail("inventory", "required: a Reservation's `inventory` output")
        elif failures:
            pass
        elif has_unknowns(inventory):
            plans = list(self.ctx.planned.values())
            for key in ("collector", "agents", "ui"):
                on = inputs.get(key)
                if isinstance(on, str):
                    error, _ = planned_verdict(on, plans)
                    if error:
                        fail(key, error)
                    elif key != "agents" and len(plans) == 1:
                        names = match_planned(list(plans[0].hosts), on)
                        if names is not None and len(names) != 1:
                            fail(
                                key,
                                f"must match exactly one host, `{on}` matches {len(names)} of the hosts the Reservation's inputs describe",
                            )
        elif not any(has_unknowns(inputs.get(k)) for k in ("collector", "agents", "ui", "network")):
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
        d = MONITORING.inputs
        result = diff_inputs(with_defaults(d, old_inputs), with_defaults(d, news), replace_keys=REPLACE_KEYS)
        result.detailed = {p: k for p, k in result.detailed.items() if not p.startswith("inventory")}
        if has_unknowns(news.get("inventory")):
            result.detailed.setdefault("agentHosts", Kind.UPDATE)
            return result
        try:
            new_plan = plan_of(news)
        except (PlanError, KeyError, TypeError, ValueError):
            result.detailed.setdefault("agentHosts", Kind.UPDATE)
            return result
        deployed = reveal(outputs.get("deployed")) or {}
        collector = deployed.get("collector") or {}
        if collector and collector.get("identity") != new_plan.identities[new_plan.collector.host]:
            result.detailed["collector"] = Kind.UPDATE_REPLACE  # a new machine: its metrics are elsewhere
        if _agent_ids(deployed) != _wanted_agents(new_plan) or not _healthy(outputs):
            result.detailed.setdefault("agentHosts", Kind.UPDATE)
        result.delete_before_replace = bool(result.replaces)  # the new one needs the same hosts' ports
        return result

    # ---- Create / Read / Update / Delete ----------------------------------------------------

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", {**inputs, **{k: UNKNOWN for k in COMPUTED if k != "deployed"}}
        rid = uuid.uuid4().hex[:12]
        return rid, await self._converge(urn, rid, inputs, {}, timeout)

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
        kept = {k: outputs[k] for k in COMPUTED if k in outputs}
        if not any(p.split(".")[0].split("[")[0] in RECONFIGURE_KEYS | {"agentHosts"} for p in changes):
            return {**news, **kept}  # recorded only (readyTimeout)
        if preview:
            return {**news, **{k: UNKNOWN for k in COMPUTED if k != "deployed"}, "deployed": outputs.get("deployed")}
        return await self._converge(urn, id, news, reveal(outputs.get("deployed")) or {}, timeout)

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        """Refresh: the targets' health as the collector sees it now (unknown when it cannot be asked)."""
        if "deployed" not in outputs:
            raise ResourceFailure("importing a Monitoring is not supported; it is deployed by `pulumi up`")
        inputs = inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        info = reveal(outputs.get("prometheus")) or {}
        try:
            results = await self._shell(urn, outputs, info.get("host", ""), prom.targets_command(int(info["port"])), 30)
            targets = prom.parse_targets(results[0].stdout) if results[0].status == "ok" else None
        except (ResourceFailure, PatternError, KeyError, ValueError):
            targets = None
        if targets is None:
            await self.ctx.log.warn(urn, f"the collector on {info.get('host', '?')} did not answer: targets' health unknown")
            targets = [{**t, "health": "unknown"} for t in reveal(outputs.get("targets")) or []]
        return ReadResult(id, {**outputs, "targets": targets}, inputs)

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        deployed = reveal(outputs.get("deployed")) or {}
        if not deployed or "inventory" not in outputs:
            return
        inputs = {**{k: v for k, v in outputs.items() if k in INPUT_KEYS}}
        problems: list[str] = []
        for role, hosts in (("ui", _names(deployed.get("ui"))), ("collector", _names(deployed.get("collector")))):
            problems += await self._stop(urn, inputs, hosts, _tag(id, role))
        problems += await self._stop(urn, inputs, sorted(_agent_ids(deployed)), _tag(id, "agent"))
        work = (deployed.get("collector") or {}).get("workDir")
        written = sorted({*_names(deployed.get("collector")), *_names(deployed.get("ui")), *_agent_ids(deployed)})
        if written:
            tags = " ".join(f'"$HOME/{BG_DIR}/{_tag(id, r)}.log"' for r in ("agent", "collector", "ui"))
            script = f"rm -f {tags}" + (f" && rm -rf '{work}'" if work else "")
            for r in await self._run(
                urn, inputs, written, {h: script if h in _names(deployed.get("collector")) else f"rm -f {tags}" for h in written}
            ):
                if r.status != "ok":
                    problems.append(f"{r.host}: could not remove what monitoring wrote ({r.status}: {r.stderr.strip()[-200:]})")
        for p in problems:
            await self.ctx.log.warn(urn, p)
        await self.ctx.log.info(
            urn, f"monitoring stopped on {len(written)} host(s)" + (f"; {len(problems)} problem(s) above" if problems else "")
        )

    # ---- converging -------------------------------------------------------------------------

    async def _converge(self, urn: str, rid: str, inputs: dict[str, Any], deployed: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Make the hosts run what the inputs say, from what `deployed` records as running."""
        try:
            plan = plan_of(inputs)
        except PlanError as err:
            raise ResourceFailure(f"{err.prop}: {err}") from err
        deployed = {k: v for k, v in deployed.items()}
        progress = self.ctx.log.status(urn)
        eff = with_defaults(MONITORING.inputs, inputs)
        port, agent_port = int(eff["port"]), int(eff["agentPort"])
        interval = float(eff["scrapeInterval"])
        limit_s = float(eff["readyTimeout"])
        collectors = reveal(inputs.get("agentCollectors")) or prom.DEFAULT_COLLECTORS

        def outputs(targets: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
            return self._outputs(urn, inputs, plan, deployed, targets)

        def partial(message: str) -> PartialFailure:
            return PartialFailure(message, rid, outputs())

        # 1. Install what is missing.
        need: dict[str, list[str]] = {h: [] for h in plan.hosts}
        for a in plan.agents:
            need[a.host].append(prom.AGENT_BINARY)
        need[plan.collector.host].append(prom.COLLECTOR_BINARY)
        await progress(f"checking prometheus-node-exporter on {len(plan.agents)} agent(s) and prometheus on {plan.collector.host}")
        results = await self._run(urn, inputs, plan.hosts, {h: prom.install_script(b) for h, b in need.items()})
        bad = [r for r in results if r.status != "ok"]
        if bad:
            raise (partial if deployed else ResourceFailure)(_failed("installing", results))
        installed = [f"{r.host}:{r.stdout.split('installed:', 1)[1].splitlines()[0]}" for r in results if "installed:" in r.stdout]
        if installed:
            await self.ctx.log.info(urn, f"installed {'; '.join(installed)}")
        home = prom.home_of(next(r.stdout for r in results if r.host == plan.collector.host)) or "/root"

        # 2. Agents: stop those on hosts no longer matched (or replaced), start the missing ones.
        wanted = _wanted_agents(plan)
        running = _agent_ids(deployed)
        gone = sorted(h for h, ident in running.items() if wanted.get(h) != ident)
        inventory_hosts = set(match_hosts(inventory_of(inputs), "all"))
        if gone:
            await self._stop(urn, inputs, [h for h in gone if h in inventory_hosts], _tag(rid, "agent"))
            for h in gone:
                running.pop(h, None)
        deployed["agents"] = dict(running)
        # Every wanted agent is (re)started: the start script refuses one that already runs, which
        # is fine, and starts one that died since (a repair after a refresh saw it down).
        results = await self._run(
            urn,
            inputs,
            [a.host for a in plan.agents],
            {a.host: prom.agent_command(a.address, agent_port, collectors) for a in plan.agents},
            background=_tag(rid, "agent"),
            ready_port=agent_port,
            ready_timeout=limit_s,
            keep_running=True,
        )
        for r in results:
            if r.status == "ok":
                deployed["agents"][r.host] = wanted[r.host]
        restarted = [r.host for r in results if r.status == "ok" and r.host in running and "already running" not in r.stdout]
        if restarted:
            await self.ctx.log.info(urn, f"restarted the agent on {', '.join(restarted)}: it was not running")
        bad = [r for r in results if r.status != "ok"]
        if bad:
            raise partial(_failed("starting the agent (prometheus-node-exporter)", results))

        # 3. The collector: its configuration, then make it re-read it, or start it.
        collector = plan.collector.host
        work_dir = (deployed.get("collector") or {}).get("workDir") or f"{home}/{prom.WORK_DIR}/{rid}"
        config = prom.config_text(collector, port, plan.agents, agent_port, interval, reveal(inputs.get("extraTargets")) or [])
        results = await self._run(urn, inputs, [collector], prom.write_config_script(work_dir, config))
        if results[0].status != "ok":
            raise partial(_failed("writing prometheus.yml", results))
        running_collector = bool(deployed.get("collector"))
        if running_collector:
            results = await self._run(urn, inputs, [collector], prom.reload_command(port))
            if results[0].status == "ok":
                await self.ctx.log.info(urn, f"Prometheus on {collector} reloaded its configuration: {len(plan.agents)} agent(s)")
            elif results[0].rc == prom.NOT_ANSWERING:
                await self.ctx.log.info(urn, f"Prometheus on {collector} was not running: starting it again")
                running_collector = False
            else:
                raise partial(_failed("reloading Prometheus' configuration", results))
        if not running_collector:
            results = await self._run(
                urn,
                inputs,
                [collector],
                prom.collector_command(work_dir, port, str(eff["retention"])),
                background=_tag(rid, "collector"),
                ready_port=port,
                ready_command=prom.ready_command(port),
                ready_timeout=limit_s,
            )
            if results[0].status != "ok":
                raise partial(_failed("starting Prometheus", results))  # the start script stopped it; the agents run
            deployed["collector"] = {"host": collector, "identity": plan.identities[collector], "workDir": work_dir}
            await self.ctx.log.info(
                urn, f"Prometheus ready on {collector}:{port}, scraping {len(plan.agents)} agent(s) every {interval:g} s"
            )

        # 4. The UI forwarder, when the UI is on another host.
        if plan.ui.host != collector and not deployed.get("ui"):
            results = await self._run(
                urn,
                inputs,
                [plan.ui.host],
                prom.forwarder_command(plan.collector.address, port, port),
                background=_tag(rid, "ui"),
                ready_port=port,
                ready_timeout=limit_s,
            )
            if results[0].status != "ok":
                raise partial(_failed("starting the UI forwarder", results))
            deployed["ui"] = {"host": plan.ui.host, "identity": plan.identities[plan.ui.host]}

        # 5. Every target scraped once: one look a second (an SSH exec on the open master), with
        # progress, until all are up or readyTimeout has passed (Prometheus applies new targets
        # every 5 s, so a first deployment waits that long at least).
        extra = sum(len(t.get("targets") or []) for t in reveal(inputs.get("extraTargets")) or [])
        expected = len(plan.agents) + 1 + extra
        t0 = time.monotonic()
        while True:
            results = await self._run(urn, inputs, [collector], prom.targets_command(port), quiet=True)
            seen = prom.parse_targets(results[0].stdout) if results[0].status == "ok" else []
            healthy = sum(t["health"] == "up" for t in seen)
            elapsed = time.monotonic() - t0
            if (len(seen) >= expected and healthy == len(seen)) or elapsed >= limit_s:
                break
            if self.ctx.cancelled.is_set():
                raise partial("cancelled while waiting for the targets to be scraped")
            await progress(f"{healthy} of {expected} target(s) scraped healthy ({elapsed:.0f} s of {limit_s:g})")
            await asyncio.sleep(POLL_S)  # the polling period of the condition
        if results[0].status != "ok":
            raise partial(_failed("reading the targets' health", results))
        targets = prom.parse_targets(results[0].stdout)
        down = [t for t in targets if t["health"] != "up"]
        if down:
            raise PartialFailure(
                f"{len(down)} target(s) not scraped after {limit_s:g} s: "
                + "; ".join(
                    f"{t['host'] or t['endpoint']} ({t['job']}, {t['endpoint']}): {t.get('lastError') or t['health']}" for t in down
                ),
                rid,
                outputs(targets),
            )
        return outputs(targets)

    def _outputs(
        self, urn: str, inputs: dict[str, Any], plan: Plan, deployed: dict[str, Any], targets: Optional[list[dict[str, Any]]]
    ) -> dict[str, Any]:
        eff = with_defaults(MONITORING.inputs, inputs)
        port, interval = int(eff["port"]), float(eff["scrapeInterval"])
        c = plan.collector
        work = (deployed.get("collector") or {}).get("workDir", "")
        stack = _stack_of(urn)
        return {
            **inputs,
            "prometheus": {
                "host": c.host,
                "address": c.address,
                "port": port,
                "url": f"http://{prom.endpoint(c.address, port)}",
                "dataDir": f"{work}/data" if work else "",
                "scrapeInterval": interval,
            },
            "targets": targets or [],
            "agentHosts": sorted(_agent_ids(deployed)),
            "tunnel": f"testbed tunnel{f' --stack {stack}' if stack else ''} {plan.ui.host}:{port} {port}",
            "uiUrls": {
                "prometheus": f"http://127.0.0.1:{port}/graph",
                "targets": f"http://127.0.0.1:{port}/targets",
                "onHosts": f"http://{prom.endpoint(plan.ui.address, port)}/graph",
            },
            "queries": queries(interval, port),
            "grafanaDashboard": _dashboard(urn, interval),
            "deployed": deployed,
        }

    # ---- remote helpers ---------------------------------------------------------------------

    async def _run(
        self, urn: str, inputs: dict[str, Any], hosts: list[str], command: Any, quiet: bool = False, **kw: Any
    ) -> list[HostResult]:
        """run_shell on exactly these hosts (a union pattern of their names); `quiet`: without its
        own progress lines (a poll, whose caller says what it waits for)."""
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

    async def _shell(self, urn: str, outputs: dict[str, Any], host: str, command: str, limit: float) -> list[HostResult]:
        return await self._run(urn, {k: v for k, v in outputs.items() if k in INPUT_KEYS}, [host], command, timeout=limit)

    async def _stop(self, urn: str, inputs: dict[str, Any], hosts: list[str], tag: str) -> list[str]:
        """Stop a background tag on these hosts; the problems, as lines (a host gone is none)."""
        present = [h for h in hosts if h in set(match_hosts(inventory_of(inputs), "all"))]
        if not present:
            return []
        try:
            results = await stop_background(
                inventory_of(inputs),
                ":".join(present),
                tag,
                cancelled=self.ctx.cancelled,
                progress=self.ctx.log.status(urn),
                become=bool(inputs.get("become")),
            )
        except (PatternError, RemoteError) as err:
            return [f"could not stop `{tag}` on {', '.join(present)}: {err}"]
        return [f"{r.host}: could not stop `{tag}` ({r.status}: {r.stderr.strip()[-200:]})" for r in results if r.status != "ok"]


def _tag(rid: str, role: str) -> str:
    return f"mon-{rid}-{role}"


def _dashboard(urn: str, interval: float) -> str:
    from ..services.grafana import dashboard_json  # the builders' import is only paid by an up

    name = urn.rsplit("::", 1)[-1] if "::" in urn else "monitoring"
    stack = _stack_of(urn)
    return dashboard_json(f"{stack} {name}" if stack else name, interval)


def _names(entry: Any) -> list[str]:
    return [entry["host"]] if isinstance(entry, dict) and entry.get("host") else []


def _agent_ids(deployed: dict[str, Any]) -> dict[str, str]:
    return dict(deployed.get("agents") or {})


def _wanted_agents(plan: Plan) -> dict[str, str]:
    return {a.host: plan.identities[a.host] for a in plan.agents}


def _healthy(outputs: dict[str, Any]) -> bool:
    targets = reveal(outputs.get("targets"))
    return bool(targets) and all(t.get("health") in ("up", "unknown") for t in targets)


def _failed(what: str, results: list[HostResult]) -> str:
    bad = [r for r in results if r.status != "ok"]
    parts = []
    for r in bad:
        why = r.stderr.strip()[-ERROR_TAIL:] or r.stdout.strip()[-ERROR_TAIL:] or "(no output)"
        parts.append(f"{r.host} ({r.status if r.status != 'failed' else f'rc={r.rc}'}): {why}")
    return f"{what} failed on {len(bad)} of {len(results)} host(s): " + "; ".join(parts)
