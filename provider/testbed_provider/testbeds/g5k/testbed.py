"""G5kTestbed: the Reservation backend on Grid'5000.

reserve(): one OAR job of type deploy per site (several sites share one advance-reservation
start date), Kadeploy of each group's environment with the reservation's own SSH key, each
single-site experiment network as a routed KaVLAN (the job's vlans 4-9, in network order) joined
by the members' first secondary interface, each multi-site network as the kavlan-global VLAN
(id >= 10) of its home site's job, joined by every member's secondary interface once all the
sites' jobs run and are deployed (each node is moved through its own site's KaVLAN API, as
EnOSlib does; the rights come from the home site's job), and SSH readiness with host keys
pinned through the ProxyCommand. The state records every job as
soon as it is submitted, so an interrupted or failed reserve leaves nothing unrecorded (the
resource layer stores it as partial state; destroy deletes the jobs, which frees nodes and vlans).
A provider killed before Create returned leaves no state at all: every job's command carries a
tag of the resource's URN and of its request (see `tagging`), and the next reserve adopts the
jobs so tagged, whatever their name (a reservation named after its resource gets a job name
derived from its URN, `job_name`; a user-set name is used as is).

`kind: vm` groups (see plan.py and hypervisors.py): their nodes are deployed like the others,
then each runs its share of the group's VMs, which become the group's hosts; the nodes stay in
the state as hypervisors (address, pinned key) so refresh and destroy reach them.

Outputs match the local backend's: hosts (name = node short name, address = its production IP), roles,
ssh (user, port 22, knownHosts, proxyCommand, keys), so a Command runs unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import shutil
import tempfile
from typing import Any, Optional

from ...common.private_files import write_private
from ...common.results import CheckFailure
from ...hosts.commands import CommandError
from ..base import Progress, ReservationError, ReservationSpec, Testbed, hosts_summary
from . import deployments, jobs, kavlan, naming, tagging
from .oar import oar_date
from .plan import Plan, SitePlan, make_plan, members, placed_site, split_nodes, validate
from .session import Cancelled, G5kError, Session
from .settings import G5kSettings
from .ssh import wait_and_pin

READY_TIMEOUT = float(os.environ.get("PULUMI_TESTBED_G5K_READY_TIMEOUT", "600"))
COULD_RUN_AT = re.compile(r"could run at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
MULTISITE_LEAD = 60  # seconds between now and the common start of a multi-site reservation
MULTISITE_TRIES = 5
ROUTED_VLANS = (4, 9)  # a site's routed KaVLAN ids
GLOBAL_VLAN_MIN = 10  # kavlan-global ids start here (one per site)
# What reserving (or repairing VMs) may raise that becomes a ReservationError with the state so far.
RESERVE_ERRORS = (G5kError, Cancelled, TimeoutError, ReservationError, OSError, CommandError, ValueError)


class G5kTestbed(Testbed):
    name = "g5k"

    def __init__(self, settings: Optional[G5kSettings], cancelled: Optional[asyncio.Event] = None) -> None:
        self.settings = settings
        self.cancelled = cancelled or asyncio.Event()

    def preflight(self) -> Optional[str]:
        if self.settings is None:
            return "the g5k backend is not configured: set `testbed:g5kConfigFile` or `testbed:g5kUri` (see `testbed:g5k*` keys)"
        if shutil.which("ssh") is None:
            return "the g5k backend needs the OpenSSH client (`ssh`) to reach the nodes"
        return None

    async def check_access(self) -> list[CheckFailure]:
        """At CheckConfig: one quick `GET /sites`. Refused credentials fail the configuration
        (naming the key); an unreachable API does not (previews work offline)."""
        if self.settings is None:
            return []
        from dataclasses import replace

        session = Session(replace(self.settings, timeout=min(self.settings.timeout, 5.0)), attempts=1)
        try:
            await session.call("checking the Grid'5000 credentials", session.gk.sites.list)
        except G5kError as err:
            if err.status == 401:
                key = "g5kPassword" if self.settings.username else "g5kUsername"
                return [
                    CheckFailure(
                        key,
                        f"the Grid'5000 API at {self.settings.uri} refused the credentials of "
                        f"`{self.settings.username or 'anonymous'}` (from {self.settings.source}): {err.reason}",
                    )
                ]
        finally:
            session.close()
        return []

    async def validate_remote(self, spec: ReservationSpec) -> list[CheckFailure]:
        """Check-time look at the reference API (sites, clusters, sizes, environments); advisory:
        nothing is reported when the API does not answer within a few seconds."""
        from .forecast import eligible_clusters
        from .plan import DEFAULT_ENVIRONMENT
        from .validation import Reference, check_placement, with_timeout
        from .vm_sizing import node_counts, too_big, vm_sizes

        settings = self.settings
        if settings is None:
            return []
        ref = Reference(settings)

        async def run() -> list[CheckFailure]:
            sizes = await vm_sizes(ref, spec, settings.site)
            failures: list[CheckFailure] = too_big(spec, sizes)
            counts = node_counts(spec, sizes)
            by_site: dict[str, list[int]] = {}
            for g, group in enumerate(spec.machines):
                by_site.setdefault(placed_site(group.options, settings.site), []).append(g)
            for site, groups in by_site.items():
                wanted: dict[str, int] = {}
                props: dict[str, str] = {}
                anywhere, anywhere_prop = 0, ""
                for g in groups:
                    cluster = spec.machines[g].options.get("cluster")
                    if cluster:
                        wanted[cluster] = wanted.get(cluster, 0) + counts.get(g, spec.machines[g].count)
                        props.setdefault(cluster, f"machines[{g}].cluster")
                    else:
                        anywhere += spec.machines[g].count
                        anywhere_prop = anywhere_prop or f"machines[{g}].count"
                found = await check_placement(
                    ref,
                    site,
                    wanted,
                    f"machines[{groups[0]}].site",
                    props,
                    anywhere=anywhere,
                    anywhere_prop=anywhere_prop,
                    eligible=lambda known: eligible_clusters(known, "default", ["deploy"]),
                )
                failures += found
                if found:
                    continue
                environments = await ref.environments(site)
                for g in groups:
                    env = spec.machines[g].options.get("environment") or DEFAULT_ENVIRONMENT
                    if environments is not None and env not in environments:
                        failures.append(
                            CheckFailure(
                                f"machines[{g}].environment", f"no environment `{env}` at {site} (see GET /sites/{site}/environments)"
                            )
                        )
            return failures

        try:
            return await with_timeout(run())
        finally:
            ref.close()

    def validate(self, spec: ReservationSpec) -> list[CheckFailure]:
        return validate(spec, self.settings.site if self.settings else None)

    async def forecast(self, spec: ReservationSpec) -> Optional[tuple[bool, str]]:
        """The earliest (common) start of the reservation's jobs, from the sites' status."""
        from .forecast import reservation_forecast

        if self.settings is None or self.validate(spec):
            return None
        return await reservation_forecast(self.settings, spec, MULTISITE_LEAD)

    async def _vm_nodes(self, spec: ReservationSpec) -> dict[int, int]:
        """Each VM group's node count, from its cluster's nodes in the reference API; without
        that description the reservation is refused (a guess would hold too few or too many)."""
        from .validation import Reference
        from .vm_sizing import node_counts, too_big, vm_sizes

        groups = [g for g, m in enumerate(spec.machines) if m.kind == "vm"]
        if not groups:
            return {}
        settings = self._configured()
        ref = Reference(settings)
        try:
            sizes = await vm_sizes(ref, spec, settings.site)
        finally:
            ref.close()
        unsized = [g for g in groups if g not in sizes]
        if unsized:
            g = unsized[0]
            raise ReservationError(
                f"cannot tell how many nodes machines[{g}]'s VMs take: the reference API did not describe the nodes of "
                f"{placed_site(spec.machines[g].options, settings.site)}/{spec.machines[g].options.get('cluster')}"
                + (f" ({ref.unreachable})" if ref.unreachable else ""),
                None,
            )
        bad = too_big(spec, sizes)
        if bad:
            raise ReservationError(f"{bad[0].property}: {bad[0].reason}", None)
        return node_counts(spec, sizes)

    def _configured(self) -> G5kSettings:
        if self.settings is None:
            raise ReservationError(self.preflight() or "g5k backend not configured", None)
        return self.settings

    def _session(self, stop: Optional[asyncio.Event] = None) -> Session:
        return Session(self._configured(), stop or self.cancelled)

    # ---- reserve ---------------------------------------------------------------------------

    async def reserve(self, spec: ReservationSpec, owner: str, progress: Progress) -> dict[str, Any]:
        session = self._session()
        work = tempfile.mkdtemp(prefix="tb-g5k-")
        state = _empty_state(spec, self._configured())
        if owner:  # a later reconcile (no URN at hand) names its new jobs the same way
            state["g5k"]["owner"] = owner
        try:
            images = await _vm_images(spec, progress, self.cancelled)  # before any job: nodes never wait for a build
            plan = make_plan(spec, self.settings.site if self.settings else None, await self._vm_nodes(spec))
            state["ssh"].update(await _keypair(work, spec.name))
            await self._submit(session, spec, plan, state, progress, owner)
            await self._build(session, spec, plan, state, work, progress, images)
            return state
        except RESERVE_ERRORS as err:
            what = "cancelled" if isinstance(err, Cancelled) else str(err)
            raise ReservationError(f"reserving on Grid'5000 failed: {what}", state if state["g5k"]["jobs"] else None) from err
        finally:
            session.close()
            shutil.rmtree(work, ignore_errors=True)

    async def _submit(
        self, session: Session, spec: ReservationSpec, plan: Plan, state: dict[str, Any], progress: Progress, owner: str = ""
    ) -> None:
        """One job per site; with several sites, the same advance-reservation start (EnOSlib's
        way: on `could run at X` from any site, delete them all and retry at X). OAR moves a start
        that is already past on its own clock to its now, which would split the common start: when
        a job's `scheduled_at` is not the date asked for, every job is deleted and submitted again
        for a later date on the server's clock (learnt from `submitted_at`), EnOSlib's growing
        nudge now+60·(retry+1)² s.

        The OAR job name is `job_name(spec, owner)`; each command carries the tag of the
        resource's URN `owner` (see `tagging`). An alive job of that name and owner tag before
        any submission can only be left by this resource's interrupted create (the provider
        killed after the POST): it is adopted per site (deleted instead if it no longer matches
        the request, or if the sites' orphans cannot share a start any more), never submitted
        twice. Without a URN nothing is tagged nor adopted."""
        name = job_name(spec, owner)
        state["g5k"]["jobName"] = name
        start: Optional[dt.datetime] = None
        if len(plan.sites) > 1:
            start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=MULTISITE_LEAD)
        orphans: dict[str, dict[str, Any]] = {}
        if owner:
            for site in plan.sites:
                found = await jobs.adopt(session, site.site, _job_body(spec, plan, site, name, owner), progress)
                if found is not None:
                    orphans[site.site] = found
            if start is not None and orphans:
                starts = {int(j.get("scheduled_at") or 0) for j in orphans.values()}
                common = starts.pop() if len(starts) == 1 else 0
                all_sites = len(orphans) == len(plan.sites)
                if common and (all_sites or common > dt.datetime.now(dt.timezone.utc).timestamp() + MULTISITE_LEAD / 2):
                    start = dt.datetime.fromtimestamp(common, dt.timezone.utc)
                else:
                    await progress("the adopted jobs cannot share a start with the other sites' any more: deleting them")
                    for site_name, job in orphans.items():
                        await jobs.release(session, site_name, int(job["uid"]), progress)
                    orphans = {}
        for attempt in range(MULTISITE_TRIES):
            later: Optional[str] = None
            skew: Optional[float] = None  # server clock − ours, when the server moved our start
            for site in plan.sites:
                body = _job_body(spec, plan, site, name, owner)
                if start is not None:
                    body["reservation"] = oar_date(start)
                if site.site in orphans:
                    job = orphans.pop(site.site)
                    state["g5k"]["jobs"].append({"site": site.site, "uid": int(job["uid"]), "resources": body["resources"]})
                    continue
                await progress(f"submitting `{body['resources']}` on {site.site}" + (f" for {body['reservation']}" if start else ""))
                try:
                    job = await jobs.submit(session, site.site, body)
                except G5kError as err:
                    match = COULD_RUN_AT.search(err.reason)
                    if match and start is not None:
                        later = match.group(1)
                        break
                    raise
                state["g5k"]["jobs"].append({"site": site.site, "uid": int(job["uid"]), "resources": body["resources"]})
                scheduled = job.get("scheduled_at")
                if start is not None and scheduled and int(scheduled) != int(start.timestamp()):
                    skew = float(job.get("submitted_at") or scheduled) - dt.datetime.now(dt.timezone.utc).timestamp()
                    break
            if later is None and skew is None:
                return
            for site_name, job in orphans.items():  # adopted but not reached before the retry
                await jobs.release(session, site_name, int(job["uid"]), progress)
            orphans = {}
            for record in state["g5k"]["jobs"]:
                await jobs.release(session, record["site"], record["uid"], progress)
            state["g5k"]["jobs"] = []
            if later is not None:
                from .oar import parse_date

                start = parse_date(later)
                await progress(f"a site cannot start before {later} (Paris); resubmitting every site for then")
            else:
                lead = MULTISITE_LEAD * (attempt + 2) ** 2
                start = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=(skew or 0.0) + lead)
                await progress(
                    f"{site.site} moved the common start (already past on its clock, {skew:+.0f} s from ours); "
                    f"resubmitting every site for {oar_date(start)} (Paris)"
                )
        raise ReservationError(
            f"no common start date found for {', '.join(s.site for s in plan.sites)} after {MULTISITE_TRIES} tries", None
        )

    async def _build(
        self,
        session: Session,
        spec: ReservationSpec,
        plan: Plan,
        state: dict[str, Any],
        work: str,
        progress: Progress,
        images: Optional[dict[int, Any]] = None,
    ) -> None:
        ssh = state["ssh"]
        key_path = os.path.join(work, "id")
        hosts: list[dict[str, Any]] = []
        hypervisors: dict[str, dict[str, Any]] = {}  # node FQDN → what runs VMs on it
        subnets: dict[str, list[str]] = {}  # site → its VMs' addresses
        sites_of: dict[int, str] = {}
        refs: dict[str, dict[str, Any]] = {}
        placed: dict[int, list[str]] = {}  # machine group → its nodes, over every site
        for site, record in zip(plan.sites, state["g5k"]["jobs"]):
            job = await jobs.get(session, site.site, record["uid"])
            if job is None:
                raise ReservationError(f"job {site.site}:{record['uid']} disappeared", state)
            job = await jobs.wait_running(session, site.site, job, progress)
            record["vlans"] = [str(v) for v in (job.get("resources_by_type") or {}).get("vlans") or []]
            if site.global_network is not None:
                record["globalVlan"] = next((v for v in record["vlans"] if int(v) >= GLOBAL_VLAN_MIN), None)
                if record["globalVlan"] is None:
                    raise ReservationError(
                        f"job {site.site}:{record['uid']} holds no kavlan-global vlan (vlans: {', '.join(record['vlans']) or 'none'})",
                        state,
                    )
            by_group = split_nodes(spec, site, list(job.get("assigned_nodes") or []))
            record["nodes"] = {str(g): nodes for g, nodes in by_group.items()}
            placed.update(by_group)
            sites_of.update({g: site.site for g in by_group})
            if site.has_vms(spec):
                record["subnets"] = [str(x) for x in (job.get("resources_by_type") or {}).get("subnets") or []]
                if not record["subnets"]:
                    raise ReservationError(f"job {site.site}:{record['uid']} holds no subnet for its VMs", state)
                subnets[site.site], record["subnetNetwork"] = await _subnet_addresses(session, site.site, record["subnets"])
            # Kadeploy, one deployment per environment of the site
            per_env: dict[str, list[str]] = {}
            for g, nodes in by_group.items():
                per_env.setdefault(plan.environments[g], []).extend(nodes)
            for env, nodes in per_env.items():
                outcome = await deployments.deploy(session, site.site, nodes, env, progress, key=ssh["publicKey"])
                state["g5k"]["deployments"].extend({"site": site.site, "uid": u} for u in outcome.deployments)
                if outcome.failed:
                    raise ReservationError(
                        f"{len(outcome.failed)} node(s) of {site.site} could not be deployed with {env}: "
                        f"{', '.join(outcome.failed)} {'; '.join(outcome.errors)}".strip(),
                        state,
                    )
            refs.update(await kavlan.node_references(session, [n for ns in by_group.values() for n in ns]))
            site_networks = await self._attach(session, spec, site, record, by_group, refs, state, progress)
            for g, nodes in sorted(by_group.items()):
                for node in nodes:
                    # The production IP, not the FQDN: it needs no DNS at the far end of the ProxyCommand.
                    device = kavlan.primary_device(refs[node]) or ""
                    nic = kavlan.adapter(refs[node], device) or {}
                    if spec.machines[g].kind == "vm":
                        hypervisors[node] = {"fqdn": node, "address": nic.get("ip") or node, "site": site.site, "device": device or "eth0"}
                        continue
                    hosts.append(
                        {
                            "name": naming.short_name(node),
                            "address": nic.get("ip") or node,
                            "fqdn": node,
                            "roles": list(spec.machines[g].roles),
                            "networks": site_networks.get(node, []),
                            "site": site.site,
                            "group": g,
                        }
                    )
        for site, record in zip(plan.sites, state["g5k"]["jobs"]):
            if site.global_network is not None:
                joined = await self._attach_global(session, spec, site, record, placed, refs, state, progress)
                for host in hosts:
                    host["networks"] = host["networks"] + joined.get(host["fqdn"], [])
        order = {n.id: k for k, n in enumerate(spec.networks)}
        for host in hosts:
            host["networks"].sort(key=lambda entry: order.get(entry["id"], len(order)))
        machines = hosts + list(hypervisors.values())
        await progress(f"waiting for SSH on {len(machines)} node(s)")
        known: list[str] = []
        tasks = [
            asyncio.ensure_future(wait_and_pin(h["address"], ssh["user"], key_path, work, ssh["proxyCommand"], READY_TIMEOUT, session.stop))
            for h in machines
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # the first host that fails (or a cancelled operation) stops the others
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        failed = [e for t in tasks if not t.cancelled() and (e := t.exception()) is not None]
        if failed:
            raise failed[0]
        keys = [t.result() for t in tasks]
        for host, key in zip(hosts, keys):
            known.append(f"{host['name']},{host['address']},{host['fqdn']} {key}\n")
        for hypervisor, key in zip(hypervisors.values(), keys[len(hosts) :]):
            hypervisor["hostKey"] = key
        if hypervisors:
            state["g5k"]["hypervisors"] = list(hypervisors.values())
            from .vms import plan_vms

            planned = plan_vms(spec, {g: placed.get(g, []) for g in sites_of if spec.machines[g].kind == "vm"}, sites_of, subnets)
            hosts += await self._start_vms(spec, state, planned, hypervisors, images or {}, work, progress, known)
        ssh["knownHosts"] = "".join(known)
        state["hosts"] = hosts
        if hypervisors:
            await self._name_hosts(state, work, progress)

    async def _name_hosts(self, state: dict[str, Any], work: str, progress: Progress) -> None:
        """/etc/hosts of every host names the reservation's hosts (VMs are in no DNS)."""
        from .hypervisors import Nodes, push_etc_hosts

        known = os.path.join(work, "known_hosts.all")
        with open(known, "w") as f:
            f.write(state["ssh"]["knownHosts"])
        shell = Nodes(state["ssh"]["user"], os.path.join(work, "id"), known, state["ssh"]["proxyCommand"], self.cancelled)
        await push_etc_hosts(shell, state["hosts"], progress)

    async def _start_vms(
        self,
        spec: ReservationSpec,
        state: dict[str, Any],
        planned: list[Any],
        hypervisors: dict[str, dict[str, Any]],
        images: dict[int, Any],
        work: str,
        progress: Progress,
        known: list[str],
        indices: Optional[dict[str, int]] = None,
    ) -> list[dict[str, Any]]:
        """`planned` VMs on their nodes (see hypervisors.py); their hosts entries, and their
        pinned keys appended to `known`. `indices`: each VM's place in the whole reservation
        (its tap device), when only some are started."""
        from . import hypervisors as hv
        from .plan import vm_network

        nodes_known = os.path.join(work, "known_hosts.hypervisors")
        with open(nodes_known, "w") as f:
            f.writelines(f"{h['address']} {h['hostKey']}\n" for h in hypervisors.values())
        nodes = hv.Nodes(state["ssh"]["user"], os.path.join(work, "id"), nodes_known, state["ssh"]["proxyCommand"], self.cancelled)
        records = state["g5k"].setdefault("vms", [])
        sizes = {g: m.vm for g, m in enumerate(spec.machines) if m.vm is not None}
        keys = await hv.start_vms(
            nodes, planned, hypervisors, sizes, images, state["ssh"]["publicKey"], state["id"], records, work, progress, indices
        )
        cidrs = {r["site"]: r.get("subnetNetwork") or (r.get("subnets") or [""])[0] for r in state["g5k"]["jobs"]}
        vm_nets = [n for n in spec.networks if vm_network(spec, n)]
        out = []
        for vm in planned:
            known.append(f"{vm.name},{vm.address} {keys[vm.name]}\n")
            # a network of VMs only is their subnet addresses (eth0, the site's production network)
            joined = [n for n in vm_nets if vm.group in members(spec, n.roles)]
            nets = [{"id": n.id, "address": vm.address, "interface": "eth0", "cidr": cidrs.get(vm.site, "")} for n in joined]
            out.append(
                {
                    "name": vm.name,
                    "address": vm.address,
                    "fqdn": vm.name,
                    "roles": list(spec.machines[vm.group].roles),
                    "networks": nets,
                    "site": vm.site,
                    "group": vm.group,
                    "kind": "vm",
                    "node": vm.node,
                }
            )
        return out

    async def _repair_vms(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> Optional[dict[str, Any]]:
        """Restart, on their own nodes, the VMs refresh found dead, when the reservation is
        otherwise what `spec` asks (same spec as at reserve, every node host alive): the jobs
        are kept, so nothing queues again. None: a change only a new reservation makes."""
        from . import hypervisors as hv
        from .vms import plan_vms

        g5k = state.get("g5k", {})
        if not g5k.get("vms") or g5k.get("spec") != spec_fingerprint(spec):
            return None
        present = {h["name"] for h in state.get("hosts", [])}
        node_hosts = [h for h in state.get("hosts", []) if h.get("kind") != "vm"]
        if len(node_hosts) != sum(m.count for m in spec.machines if m.kind != "vm"):
            return None  # a node of a host group is gone: OAR cannot give it back to this job
        session = self._session()
        try:
            nodes_of: dict[int, list[str]] = {}
            sites_of: dict[int, str] = {}
            subnets: dict[str, list[str]] = {}
            for record in g5k["jobs"]:
                for g, names in (record.get("nodes") or {}).items():
                    if spec.machines[int(g)].kind == "vm":
                        nodes_of[int(g)], sites_of[int(g)] = list(names), record["site"]
                if record.get("subnets"):
                    subnets[record["site"]], _ = await _subnet_addresses(session, record["site"], record["subnets"])
        except (G5kError, Cancelled) as err:
            raise ReservationError(f"reading the reservation's sites failed: {err}", state) from err
        finally:
            session.close()
        planned = plan_vms(spec, nodes_of, sites_of, subnets)
        indices = {vm.name: k for k, vm in enumerate(planned)}
        missing = [vm for vm in planned if vm.name not in present]
        if not missing:
            return state
        names = ", ".join(vm.name for vm in missing)
        await progress(f"restarting {names} on {', '.join(sorted({vm.node for vm in missing}))} (the jobs are kept)")
        lost = {vm.name for vm in missing}
        dead = [r for r in g5k["vms"] if r["name"] in lost]
        await hv.stop_vms({**state, "g5k": {**g5k, "vms": dead}}, self.cancelled, progress)  # what a dead VM left
        new = {**state, "g5k": {**g5k, "vms": [r for r in g5k["vms"] if r["name"] not in lost]}, "ssh": dict(state["ssh"])}
        hypervisors = {h["fqdn"]: h for h in new["g5k"].get("hypervisors", [])}
        work = tempfile.mkdtemp(prefix="tb-g5k-")
        try:
            write_private(os.path.join(work, "id"), state["ssh"]["privateKey"], 0o600)
            images = await _vm_images(spec, progress, self.cancelled)
            known = [line + "\n" for line in state["ssh"].get("knownHosts", "").splitlines() if line.split(",")[0] not in lost]
            started = await self._start_vms(spec, new, missing, hypervisors, images, work, progress, known, indices)
            new["ssh"]["knownHosts"] = "".join(known)
            by_name = {h["name"]: h for h in state["hosts"] + started}
            new["hosts"] = node_hosts + [by_name[vm.name] for vm in planned if vm.name in by_name]
            await self._name_hosts(new, work, progress)
        except RESERVE_ERRORS as err:
            what = "cancelled" if isinstance(err, Cancelled) else str(err)
            raise ReservationError(f"restarting {names} failed: {what}", new) from err
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return new

    async def _attach(
        self,
        session: Session,
        spec: ReservationSpec,
        site: SitePlan,
        record: dict[str, Any],
        by_group: dict[int, list[str]],
        refs: dict[str, dict[str, Any]],
        state: dict[str, Any],
        progress: Progress,
    ) -> dict[str, list[dict[str, str]]]:
        """Each network of the site gets one of the job's vlans; members' secondary NIC joins it."""
        if not site.networks:
            return {}
        site_info = (await session.call(f"reading site {site.site}", session.gk.sites.get, site.site)).to_dict()
        out: dict[str, list[dict[str, str]]] = {}
        routed = [v for v in record["vlans"] if ROUTED_VLANS[0] <= int(v) <= ROUTED_VLANS[1]]
        for net_id, vlan in zip(site.networks, routed):
            net = next(n for n in spec.networks if n.id == net_id)
            cidr = ((site_info.get("kavlans") or {}).get(vlan) or {}).get("network", "")
            nodes = [n for g, ns in by_group.items() if net.roles is None or set(spec.machines[g].roles) & set(net.roles) for n in ns]
            addresses, entries = [], []
            for node in nodes:
                ref = refs[node]
                device = kavlan.secondary_device(ref)
                if device is None:
                    raise ReservationError(
                        f"{node} has no secondary interface for network `{net_id}` (choose a cluster with two NICs)", state
                    )
                addresses.append(naming.interface_address(node, site.site, device, primary=False))
                entries.append(
                    (
                        node,
                        {
                            "id": net_id,
                            "address": kavlan.vlan_ip(ref, device, vlan) or "",
                            "interface": device,
                            "cidr": cidr,
                            "hostname": naming.kavlan_name(node, site.site, vlan, device, primary=False),
                        },
                    )
                )
            await progress(f"network `{net_id}`: moving {len(addresses)} interface(s) into vlan {vlan} on {site.site}")
            answer = await kavlan.move(session, site.site, vlan, addresses)
            bad = kavlan.failures(answer, addresses)
            if bad:
                raise ReservationError(f"KaVLAN refused network `{net_id}`: {'; '.join(bad)}", state)
            for node, entry in entries:
                out.setdefault(node, []).append({k: entry[k] for k in ("id", "address", "interface", "cidr")})
        return out

    async def _attach_global(
        self,
        session: Session,
        spec: ReservationSpec,
        home: SitePlan,
        record: dict[str, Any],
        placed: dict[int, list[str]],
        refs: dict[str, dict[str, Any]],
        state: dict[str, Any],
        progress: Progress,
    ) -> dict[str, list[dict[str, str]]]:
        """The multi-site network homed at `home`: every member's secondary NIC joins the job's
        kavlan-global vlan. KaVLAN takes each interface at its own site
        (`POST /sites/<node's site>/vlans/<id>/nodes`, one call per site, as EnOSlib's
        `set_nodes_vlan`); the rights come from the home site's job. The CIDR is the one the
        home site publishes for that vlan."""
        net_id, vlan = home.global_network or "", record["globalVlan"]
        net = next(n for n in spec.networks if n.id == net_id)
        site_info = (await session.call(f"reading site {home.site}", session.gk.sites.get, home.site)).to_dict()
        cidr = ((site_info.get("kavlans") or {}).get(vlan) or {}).get("network", "")
        per_site: dict[str, list[str]] = {}
        entries: list[tuple[str, dict[str, str]]] = []
        for g in members(spec, net.roles):
            for node in placed.get(g, []):
                ref = refs[node]
                device = kavlan.secondary_device(ref)
                if device is None:
                    raise ReservationError(
                        f"{node} has no secondary interface for network `{net_id}` (choose a cluster with two NICs)", state
                    )
                node_site = naming.site_of(node)
                per_site.setdefault(node_site, []).append(naming.interface_address(node, node_site, device, primary=False))
                entries.append(
                    (node, {"id": net_id, "address": kavlan.vlan_ip(ref, device, vlan) or "", "interface": device, "cidr": cidr})
                )
        for node_site, addresses in per_site.items():
            await progress(
                f"network `{net_id}`: moving {len(addresses)} interface(s) of {node_site} into kavlan-global vlan {vlan} of {home.site}"
            )
            answer = await kavlan.move(session, node_site, vlan, addresses)
            bad = kavlan.failures(answer, addresses)
            if bad:
                raise ReservationError(f"KaVLAN refused network `{net_id}`: {'; '.join(bad)}", state)
        out: dict[str, list[dict[str, str]]] = {}
        for node, entry in entries:
            out.setdefault(node, []).append(entry)
        return out

    # ---- later calls, driven by the state ----------------------------------------------------

    async def reconcile(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        """OAR cannot add nodes to a running job: a changed reservation is released and made
        anew. Dead VMs of an unchanged one are restarted in place instead."""
        repaired = await self._repair_vms(state, spec, progress)
        if repaired is not None:
            return repaired
        await progress("a g5k reservation cannot grow or shrink in place: releasing it and reserving again")
        await self.release(state, progress)
        try:
            return await self.reserve(spec, owner=state.get("g5k", {}).get("owner", ""), progress=progress)
        except ReservationError as err:
            if err.state is None:  # the old jobs are gone and nothing new exists: record exactly that
                empty = {**_empty_state(spec, self._configured()), "ssh": state["ssh"], "id": state["id"]}
                raise ReservationError(str(err), empty) from err
            raise

    async def inspect(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        session = self._session()
        try:
            alive_sites = set()
            for record in state.get("g5k", {}).get("jobs", []):
                job = await jobs.get(session, record["site"], record["uid"])
                if job is not None and job.get("state") not in jobs.GONE:
                    alive_sites.add(record["site"])
        except (G5kError, Cancelled) as err:
            raise ReservationError(f"reading the reservation's jobs failed: {err}", state) from err
        finally:
            session.close()
        if not alive_sites:
            return None
        from .hypervisors import dead_vms

        dead = await dead_vms(state, alive_sites, self.cancelled)
        return {**state, "hosts": [h for h in state["hosts"] if h.get("site") in alive_sites and h["name"] not in dead]}

    def describe(self, state: dict[str, Any]) -> str:
        ready = hosts_summary([h["name"] for h in state.get("hosts", [])])
        records = state.get("g5k", {}).get("jobs", [])
        if not records:
            return ready
        held = sum(len(nodes) for r in records for nodes in (r.get("nodes") or {}).values())
        listed = ", ".join(f"{r['site']}:{r['uid']}" for r in records)
        return f"{ready}; job(s) {listed}" + (f" holding {held} node(s)" if held != len(state.get("hosts", [])) else "")

    async def release(self, state: dict[str, Any], progress: Progress) -> None:
        from .hypervisors import stop_vms

        await stop_vms(state, self.cancelled, progress)  # before the jobs go: their nodes still answer
        session = self._session()
        try:
            for record in state.get("g5k", {}).get("jobs", []):
                outcome = await jobs.release(session, record["site"], record["uid"], progress)
                await progress(f"job {record['site']}:{record['uid']}: {outcome}")
        except (G5kError, Cancelled) as err:
            raise ReservationError(f"deleting the reservation's jobs failed: {err}", state) from err
        finally:
            session.close()


async def _vm_images(spec: ReservationSpec, progress: Progress, cancelled: asyncio.Event) -> dict[int, Any]:
    """The image of each VM group (built here, from Debian's packages, on first use)."""
    from ...hosts.vm.image import cached_image, ensure_image
    from ...hosts.vm.machine import user_image

    groups = [(g, m) for g, m in enumerate(spec.machines) if m.kind == "vm"]
    if not groups:
        return {}
    if cached_image() is None:
        await progress("building the VM image (Debian 12, from the archive; first use only: about a minute)…")
    default = await ensure_image(progress, cancelled)
    out = {}
    for g, m in groups:
        try:
            out[g] = user_image(m.vm.image, default) if m.vm is not None and m.vm.image else default
        except ValueError as err:
            raise ReservationError(f"machines[{g}].image: {err}", None) from err
    return out


async def _subnet_addresses(session: Session, site: str, subnets: list[str]) -> tuple[list[str], str]:
    """The VMs' addresses in a site's reserved subnets, without the site's subnet gateway, and
    the network their DHCP lease is on (the site's whole g5ksubnet, whose gateway routes them)."""
    from .vms import subnet_addresses

    info = (await session.call(f"reading site {site}", session.gk.sites.get, site)).to_dict()
    g5ksubnet = info.get("g5ksubnet") or {}
    gateway = g5ksubnet.get("gateway")
    return [a for net in subnets for a in subnet_addresses(net, gateway)], str(g5ksubnet.get("network") or subnets[0])


def job_name(spec: ReservationSpec, owner: str) -> str:
    """The OAR job name: `<name>-<6 hex of the URN>` for a reservation named after its resource
    (the default), the user's own `name` as is otherwise."""
    if owner and spec.name == naming.resource_name(owner):
        return naming.job_name(spec.name, owner)
    return spec.name


def _job_body(spec: ReservationSpec, plan: Plan, site: SitePlan, name: str, owner: str) -> dict[str, Any]:
    """The OAR request of one site, its command tagged with the URN `owner` (when known)."""
    body: dict[str, Any] = {
        "name": name,
        "resources": plan.resources(spec, site),
        "command": "sleep infinity",
        "types": ["deploy"],
        "queue": "default",
    }
    return {**body, "command": tagging.tag(body["command"], owner, body)}


def _empty_state(spec: ReservationSpec, settings: G5kSettings) -> dict[str, Any]:
    return {
        "backend": "g5k",
        "id": f"{spec.name}-{secrets.token_hex(3)}",
        "hosts": [],
        "networks": [{"id": n.id, "roles": list(n.roles) if n.roles is not None else None} for n in spec.networks],
        "ssh": {
            "user": settings.ssh_user,
            "port": 22,
            "knownHosts": "",
            "proxyCommand": settings.proxy_command,
            "privateKey": "",
            "publicKey": "",
        },
        "g5k": {"jobs": [], "deployments": [], "spec": spec_fingerprint(spec)},
    }


def spec_fingerprint(spec: ReservationSpec) -> str:
    """What the reservation was made for, to tell a repair (same spec) from a change."""
    import dataclasses
    import hashlib
    import json

    return hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str).encode()).hexdigest()[:16]


async def _keypair(work: str, name: str) -> dict[str, str]:
    """A fresh ed25519 key for this reservation (deployed as root's authorized key)."""
    from ...hosts.keys import generate, read_public

    path = os.path.join(work, "id")
    await generate(path, f"pulumi-testbed g5k {name}", None)
    with open(path) as f:
        private = f.read()
    from ...protocol.redact import REDACTOR

    REDACTOR.register(private)
    return {"privateKey": private, "publicKey": read_public(path + ".pub")}
