"""LocalTestbed: hosts as network namespaces on this machine, each with its own sshd.

Layout of one reservation (prefix `tb-<slug>-<hex>-`):
  - switch namespace `<prefix>sw`: bridge br0 (management, 198.19.0.0/16, access address
    198.19.255.254) and br{k+1} per experiment network k;
  - host namespace `<prefix><host>` per host: eth0 on br0, eth{k+1} on br{k+1};
  - or, for a machine group of kind `vm`, a QEMU VM (hosts.vm) per host, run in the switch
    namespace with taps on the same bridges (named like a namespace host's switch ports), the same
    addresses and MACs, and its own pinned host key; its files in `hosts/<host>/`;
  - run dir `<run_root>/<prefix>/` (0700): manifest.json, client key `id`, known_hosts,
    ssh_config and `hosts/<host>/` with the sources of the host's private directories.
Every later call is driven by the returned state (plus, for teardown, the prefix).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from ...common import pids
from ...common.deadlines import Cancelled
from ...common.private_files import write_private
from ...common.results import CheckFailure
from ...hosts import sshd
from ...hosts.commands import CommandError, run
from ...hosts.keys import HOST_KEY, generate, parse_known_hosts, read_public
from ...hosts.netns import add_namespaces, list_namespaces, namespace_id, process_namespace, stop_processes, teardown
from ...hosts.readiness import wait_for_ssh
from ...hosts.vm import qemu
from ...hosts.vm.image import VmImage, cached_image, ensure_image
from ...hosts.vm.machine import user_image
from ..base import MachineGroup, Progress, ReservationError, ReservationSpec, Testbed, hosts_summary
from . import manifest, watchdog
from .addressing import allocate, allocate_management, parse_cidr, slot
from .client_config import known_hosts_text, proxy_command, ssh_config_text
from .naming import (
    PREFIX_RE,
    PlannedHost,
    host_namespace,
    interface,
    new_prefix,
    plan_hosts,
    reservation_id,
    slug,
    switch_namespace,
)
from .preflight import preflight
from .validation import validate, vm_facts
from .wiring import HostWiring, links_of, setup_switch, wire_hosts

CONCURRENCY = max(4, 4 * (os.cpu_count() or 1))  # per-host commands in flight at once
PROGRESS_INTERVAL = 0.3  # seconds between two "SSH ready on k/N" lines (the last one always shows)
VM_READY_TIMEOUT = 300.0  # seconds from QEMU's start to the SSH banner (TCG: ~6 s alone, more when many boot at once)


@dataclass
class Network:
    id: str
    cidr: ipaddress.IPv4Network
    roles: Optional[list[str]]


@dataclass
class HostRecord:
    """One host as far as we know it: desired facts plus what exists (pid, key)."""

    name: str
    roles: Optional[list[str]]
    group: int
    namespace: str
    address: Optional[str] = None
    networks: list[dict[str, str]] = field(default_factory=list)
    sshd_pid: Optional[int] = None
    sshd_start: Optional[int] = None  # the sshd's start time: tells it from a later process with its pid
    host_key: Optional[str] = None
    kind: str = "host"  # "vm": a QEMU VM (no namespace of its own: `namespace` is "")
    size: Optional[dict[str, Any]] = None  # a VM's {"cores", "memoryMb", "image"} (image None: the default)
    vm: Optional[dict[str, Any]] = None  # a VM's qemu.VmHandle.to_state() once QEMU runs

    @property
    def handle(self) -> Optional[qemu.VmHandle]:
        return qemu.VmHandle.from_state(self.vm) if self.vm else None


@dataclass
class Context:
    """One reservation in memory: names, keys, networks, hosts (in spec order)."""

    prefix: str
    run_dir: str
    networks: list[Network]
    private_key: str = ""
    public_key: str = ""
    records: dict[str, HostRecord] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return switch_namespace(self.prefix)

    @property
    def id(self) -> str:
        return reservation_id(self.prefix)

    def host_dir(self, name: str) -> str:
        return sshd.host_dir(self.run_dir, name)


class LocalTestbed(Testbed):
    name = "local"

    def __init__(self, run_root: str = "/tmp/pulumi-testbed", cancelled: Optional[asyncio.Event] = None, ready_timeout: float = 60.0):
        self.run_root = os.path.abspath(run_root)
        self.cancelled = cancelled
        self.ready_timeout = ready_timeout

    # ---- checks ----------------------------------------------------------------------------

    def preflight(self) -> Optional[str]:
        return preflight()

    def validate(self, spec: ReservationSpec) -> list[CheckFailure]:
        return validate(spec, vm_facts(spec, os.path.join(self.run_root, f"tb-{slug(spec.name)}-")))

    def planned_names(self, spec: ReservationSpec) -> Optional[list[str]]:
        return [h.name for h in plan_hosts(spec)]

    # ---- reserve ---------------------------------------------------------------------------

    async def reserve(self, spec: ReservationSpec, owner: str, progress: Progress) -> dict[str, Any]:
        self._raise_if_cancelled(None)
        await self._sweep_orphans(owner, progress)
        networks = _networks(spec)
        prefix, run_dir = self._claim_prefix(spec.name)
        manifest.create(run_dir, owner, prefix)
        guard = await watchdog.start(run_dir, self.run_root)  # releases it all if this process dies mid-create
        manifest.update(run_dir, watchdogPid=guard.pid)
        try:
            return await self._reserve(spec, prefix, run_dir, networks, progress)
        finally:
            await guard.done()

    async def _reserve(
        self, spec: ReservationSpec, prefix: str, run_dir: str, networks: list[Network], progress: Progress
    ) -> dict[str, Any]:
        ctx = Context(prefix, run_dir, networks)
        try:
            plan = plan_hosts(spec)
            addresses = allocate_management(len(plan), used=())
            for host, address in zip(plan, addresses):
                ctx.records[host.name] = _new_record(prefix, host, spec.machines[host.group], address)
            _assign_experiment_addresses(ctx, plan, list(ctx.records.values()))
            await self._bring_up(ctx, list(ctx.records.values()), progress, fresh_switch=True)
        except (Exception, Cancelled) as err:  # noqa: BLE001 - everything becomes a ReservationError
            message = _describe(err, "creating the reservation")
            if not list_namespaces(prefix):  # nothing but the run dir exists: leave nothing behind
                await asyncio.to_thread(shutil.rmtree, run_dir, True)
                raise ReservationError(message, None) from err
            manifest.set_status(run_dir, manifest.FAILED)
            raise ReservationError(message, self._snapshot(ctx)) from err
        manifest.set_status(run_dir, manifest.READY)
        return self._state(ctx)

    def _claim_prefix(self, name: str) -> tuple[str, str]:
        """A prefix no namespace uses yet, and its freshly created run dir."""
        for _ in range(50):
            prefix = new_prefix(name)
            if list_namespaces(prefix):
                continue
            try:
                return prefix, manifest.make_run_dir(self.run_root, prefix)
            except FileExistsError:
                continue
        raise ReservationError(f"could not find a free reservation prefix under {self.run_root}", None)

    async def _sweep_orphans(self, owner: str, progress: Progress) -> None:
        """Release this owner's creations interrupted by a crash (status `creating`, creator dead)."""
        for run_dir, _ in manifest.orphans(self.run_root, owner):
            await self.release_leftover(run_dir, progress)

    async def sweep_interrupted(self, stack: str, progress: Progress) -> None:
        """Release the leftovers of this stack's interrupted creates (see Testbed.sweep_interrupted):
        run dirs under our run root still `creating` whose creator is dead, of any resource
        whose URN starts with `stack` (`urn:pulumi:<stack>::<project>::`)."""
        for run_dir, _ in manifest.orphans(self.run_root, stack):
            await self.release_leftover(run_dir, progress)

    async def release_leftover(self, run_dir: str, progress: Progress) -> bool:
        """Release an interrupted create's reservation, known only by its run dir, if it still is
        one and nobody else is releasing it (manifest.claim). Never raises: a leftover must not
        stop anything else. Whether it released it."""
        with manifest.claim(run_dir) as data:
            if data is None:
                return False
            prefix = data["prefix"]
            await progress(f"releasing {reservation_id(prefix)}, left over by an interrupted create")
            try:
                await self.release(_bare_state(prefix, run_dir), progress)
            except ReservationError as err:
                await progress(f"could not release the leftover {reservation_id(prefix)}: {err}")
                return False
        return True

    async def release_unrecorded(self, run_dir: str, progress: Progress) -> None:
        """Release a reservation known only by its run dir (named by its prefix), as `testbed gc`
        does for one no stack holds any more: every namespace of the prefix, its processes, the
        run dir. Raises ReservationError."""
        prefix = os.path.basename(os.path.normpath(run_dir))
        if not PREFIX_RE.match(prefix):
            raise ReservationError(f"{run_dir} is not a reservation's run dir", None)
        await self.release(_bare_state(prefix, run_dir), progress)

    # ---- reconcile -------------------------------------------------------------------------

    async def reconcile(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        self._raise_if_cancelled(state)
        ctx = _load(state)
        wanted = _networks(spec)
        if [(n.id, n.cidr, n.roles) for n in wanted] != [(n.id, n.cidr, n.roles) for n in ctx.networks]:
            raise ReservationError("the networks differ from the reservation's; a network change replaces the reservation", state)
        try:
            return await self._reconcile(ctx, spec, progress)
        except (Exception, Cancelled) as err:  # noqa: BLE001
            raise ReservationError(_describe(err, "updating the reservation"), self._snapshot(ctx)) from err

    async def _reconcile(self, ctx: Context, spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        await asyncio.to_thread(_restore_run_dir, ctx)
        fresh_switch = namespace_id(ctx.switch) is None
        alive = set() if fresh_switch else {r.name for r in ctx.records.values() if _alive(r)}
        plan = plan_hosts(spec)
        keep: dict[str, HostRecord] = {}
        for host in plan:
            r = ctx.records.get(host.name)
            if (
                r
                and r.name in alive
                and r.address
                and r.roles == list(host.roles)
                and _same_kind(r, spec.machines[host.group])
                and _network_ids(r) == [ctx.networks[k].id for k in host.networks]
            ):
                r.group = host.group
                keep[host.name] = r

        desired = {h.name for h in plan}
        added = [h.name for h in plan if h.name not in ctx.records]
        repaired = [
            h.name
            for h in plan
            if h.name in ctx.records
            and h.name not in keep
            and ctx.records[h.name].roles in (None, list(h.roles))
            and _same_kind(ctx.records[h.name], spec.machines[h.group])
        ]
        changed = [h.name for h in plan if h.name in ctx.records and h.name not in keep and h.name not in repaired]
        removed = [n for n in ctx.records if n not in desired]
        kept_ns = {r.namespace for r in keep.values() if r.namespace}
        strays = set(list_namespaces(ctx.prefix)) if PREFIX_RE.match(ctx.prefix) else set()  # e.g. from an interrupted update
        doomed = sorted((strays | {r.namespace for r in ctx.records.values() if r.namespace}) - kept_ns - {ctx.switch})
        if fresh_switch:
            doomed = sorted(set(doomed) | {ctx.switch})
        parts = [f"keeping {len(keep)}"]
        parts += [
            f"{label} {', '.join(names)}"
            for label, names in (
                ("adding", added),
                ("repairing", repaired),
                ("recreating (roles or kind changed)", changed),
                ("removing", removed),
            )
            if names
        ]
        if fresh_switch:
            parts.append("recreating the switch namespace")
        await progress("reconciling hosts: " + "; ".join(parts))

        await _stop_vms([h for r in ctx.records.values() if r.name not in keep and (h := r.handle) is not None], progress)
        await self._stop_unlisted(
            [(r.name, r.namespace, r.sshd_pid, r.sshd_start) for r in ctx.records.values() if r.name not in keep and r.kind != "vm"],
            progress,
        )
        if doomed:
            await teardown(doomed, self.cancelled)
            for name in removed:
                await asyncio.to_thread(shutil.rmtree, ctx.host_dir(name), True)
        ctx.records = {}
        new: list[HostRecord] = []
        addresses = iter(allocate_management(len(plan) - len(keep), used=[r.address for r in keep.values() if r.address]))
        for host in plan:
            if host.name in keep:
                ctx.records[host.name] = keep[host.name]
            else:
                r = _new_record(ctx.prefix, host, spec.machines[host.group], next(addresses))
                ctx.records[host.name] = r
                new.append(r)
        _assign_experiment_addresses(ctx, plan, new)
        if new or fresh_switch:
            await self._bring_up(ctx, new, progress, fresh_switch=fresh_switch)
        else:
            await asyncio.to_thread(self._write_host_lists, ctx)
        if new or removed:
            await self._push_etc_hosts(ctx, [r for r in ctx.records.values() if r.kind == "vm" and r not in new], progress)
        manifest.set_status(ctx.run_dir, manifest.READY)
        return self._state(ctx)

    # ---- inspect ---------------------------------------------------------------------------

    async def inspect(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        local = state["local"]
        recorded = [h["namespace"] for h in local.get("hosts", {}).values() if h.get("namespace")] + [local["switchNamespace"]]
        existing = [n for n in recorded if namespace_id(n) is not None]
        if PREFIX_RE.match(local["prefix"]):
            existing += list_namespaces(local["prefix"])
        if not existing:
            return None
        switch_up = namespace_id(local["switchNamespace"]) is not None
        alive = {
            name
            for name, h in local.get("hosts", {}).items()
            if switch_up and (_vm_running(h.get("vm")) if h.get("kind") == "vm" else _pid_in_namespace(h.get("sshdPid"), h["namespace"]))
        }
        return {**state, "hosts": [h for h in state["hosts"] if h["name"] in alive]}

    # ---- release ---------------------------------------------------------------------------

    async def release(self, state: dict[str, Any], progress: Progress) -> None:
        local = state["local"]
        prefix, run_dir = local["prefix"], local["runDir"]
        names = {local["switchNamespace"]} | {h["namespace"] for h in local.get("hosts", {}).values() if h.get("namespace")}
        if PREFIX_RE.match(prefix):  # a malformed prefix could match others' namespaces: never sweep by it
            names |= set(list_namespaces(prefix))
        present = sorted(n for n in names if os.path.lexists(os.path.join("/run/netns", n)))
        if present:
            await progress(f"releasing {reservation_id(prefix)}: stopping and deleting {len(present)} namespace(s)")
        t0 = time.monotonic()
        try:
            await _stop_vms(_recorded_vms(local) or _vms_in_run_dir(run_dir, prefix), progress)  # before their switch goes
            await self._stop_unlisted(_recorded_sshds(local) or _sshds_in_run_dir(run_dir, prefix), progress)
            await teardown(present, self.cancelled)
            if os.path.basename(os.path.normpath(run_dir)) == prefix:  # never remove anything but our own run dir
                await _unmount_below(run_dir)
                await asyncio.to_thread(shutil.rmtree, run_dir, True)
        except (Exception, Cancelled) as err:  # noqa: BLE001
            raise ReservationError(_describe(err, f"releasing {reservation_id(prefix)}"), state) from err
        if present:
            await progress(f"released {reservation_id(prefix)} in {time.monotonic() - t0:.1f} s")

    def describe(self, state: dict[str, Any]) -> str:
        recorded = list(state.get("local", {}).get("hosts", {}))
        ready = [h["name"] for h in state.get("hosts", [])]
        if sorted(recorded) == sorted(ready):
            return hosts_summary(ready)
        return f"{hosts_summary(recorded)} with their namespaces, {len(ready)} of them ready"

    async def _stop_unlisted(self, sshds: list[tuple[str, str, Optional[int], Optional[int]]], progress: Progress) -> None:
        """Stop the hosts whose namespace was deleted outside Pulumi (`ip netns del`): their sshd
        (and whatever it started) lives on in a namespace no name leads to any more, so teardown
        by namespace misses it. It is found by its recorded pid, checked to be that very sshd by
        its start time, and its now anonymous namespace is emptied: every process in it is that
        host's. Never by name: all hosts share one kernel."""
        own = process_namespace(os.getpid())
        found: dict[tuple[int, int], str] = {}
        for name, namespace, pid, started in sshds:
            if pid is None or not sshd.still_running(pid, started):
                continue
            ns = process_namespace(pid)
            if ns is not None and ns != own and ns != namespace_id(namespace):
                found[ns] = name
        if found:
            await progress(f"stopping the processes of {', '.join(sorted(found.values()))}, whose namespace was deleted outside Pulumi")
            await stop_processes(sorted(found), self.cancelled)

    # ---- bringing hosts up -----------------------------------------------------------------

    async def _bring_up(self, ctx: Context, new: list[HostRecord], progress: Progress, fresh_switch: bool) -> None:
        """Create `new` hosts (and the switch when fresh): namespace hosts with their sshd, VMs
        with QEMU on the switch's bridges; wait for SSH on all of them."""
        cancelled = self.cancelled
        limit = asyncio.Semaphore(CONCURRENCY)
        t0 = time.monotonic()
        n = len(new)
        hosts = [r for r in new if r.kind != "vm"]
        vms = [r for r in new if r.kind == "vm"]
        what = "namespaces, bridges, sshd" + (", QEMU VMs" if vms else "")
        await progress(f"creating {n} host(s) ({what})…" if not vms else f"creating {n} host(s), {len(vms)} of them VMs ({what})…")
        images: dict[Optional[str], VmImage] = {}

        async def network() -> None:
            await add_namespaces(([ctx.switch] if fresh_switch else []) + [r.namespace for r in hosts], cancelled)
            if fresh_switch:
                await setup_switch(ctx.switch, len(ctx.networks), cancelled)
            await wire_hosts(ctx.switch, [_wiring(ctx, r) for r in hosts], cancelled, limit, replace_stale=not fresh_switch)

        async def client_key() -> None:
            if not ctx.private_key:
                path = os.path.join(ctx.run_dir, "id")
                await generate(path, f"pulumi-testbed {ctx.id}", cancelled)
                with open(path) as f:
                    ctx.private_key = f.read()
                with open(path + ".pub") as f:
                    ctx.public_key = f.read().strip()

        async def host_files(r: HostRecord) -> None:
            hdir = ctx.host_dir(r.name)
            await asyncio.to_thread(shutil.rmtree, hdir, True)
            if r.kind == "vm":
                await asyncio.to_thread(os.makedirs, os.path.join(hdir, "etc-ssh"), 0o700)
            else:
                await asyncio.to_thread(sshd.prepare_host_dir, hdir, ctx.public_key)
            key = os.path.join(hdir, "etc-ssh", HOST_KEY)
            async with limit:
                await generate(key, f"{r.name} host key, {ctx.id}", cancelled)
            r.host_key = read_public(key + ".pub")

        async def files() -> None:
            await client_key()
            await _gather_all([host_files(r) for r in new])

        async def vm_images() -> None:
            wanted = {(r.size or {}).get("image") for r in vms}
            if not vms:
                return
            if any(path is None or not os.path.isdir(path) for path in wanted):
                if cached_image() is None:
                    await progress("building the VM image (Debian 12, from the archive; first use only: about a minute)…")
                images[None] = await ensure_image(progress, cancelled)
            for path in wanted:
                if path is not None:
                    images[path] = user_image(path, images.get(None))  # type: ignore[arg-type]

        await _gather_all([network(), files(), vm_images()])
        await asyncio.to_thread(self._write_host_lists, ctx)

        async def start(r: HostRecord) -> None:
            async with limit:
                await sshd.start(r.namespace, ctx.host_dir(r.name), r.name, cancelled)

        accelerator: Optional[qemu.Accel] = None
        if vms:
            accelerator = await qemu.accel(next(iter(images.values())), cancelled)
            if accelerator.name == "tcg":
                why = accelerator.reason.split(" (")[0]  # without QEMU's own words
                await progress(f"TCG: no usable KVM here ({why}); each VM takes several seconds to boot")
            await progress(f"starting {len(vms)} VM(s) ({accelerator.name})…")

        async def start_vm(r: HostRecord) -> None:
            size = r.size or {}
            handle = await qemu.start_vm(
                r.name,
                ctx.switch,
                [qemu.VmNic(link.bridge, link.port, link.mac, link.address or "", link.device) for link in links_of(_wiring(ctx, r))],
                images[size.get("image")],
                host_key=os.path.join(ctx.host_dir(r.name), "etc-ssh", HOST_KEY),
                authorized_key=ctx.public_key,
                run_dir=ctx.host_dir(r.name),
                cores=int(size.get("cores") or 1),
                memory_mb=int(size.get("memoryMb") or 512),
                accelerator=accelerator,
                etc_hosts=os.path.join(ctx.host_dir(r.name), "etc-hosts"),
                cancelled=cancelled,
            )
            r.vm = handle.to_state()

        await _gather_all([start(r) for r in hosts] + [start_vm(r) for r in vms])
        created = time.monotonic() - t0

        by_address = {r.address: r for r in hosts if r.address}
        ready = 0
        last_report = 0.0

        async def count_ready() -> None:
            nonlocal ready, last_report
            ready += 1
            now = time.monotonic()
            if ready == n or now - last_report >= PROGRESS_INTERVAL or vms:
                last_report = now
                await progress(f"SSH ready on {ready}/{n} hosts")

        async def on_ready(address: str) -> None:
            r = by_address[address]
            r.sshd_pid = sshd.read_pid(ctx.host_dir(r.name))
            r.sshd_start = sshd.start_time(r.sshd_pid)
            await count_ready()

        async def on_vm_ready(vm: qemu.VmHandle) -> None:
            await count_ready()

        async def wait_hosts() -> list[str]:
            if not by_address:
                return []
            return await wait_for_ssh(ctx.switch, list(by_address), self.ready_timeout, cancelled, on_ready)

        async def wait_vms() -> list[qemu.VmHandle]:
            handles = [h for r in vms if (h := r.handle) is not None]
            return await qemu.wait_ssh(handles, max(self.ready_timeout, VM_READY_TIMEOUT), cancelled, on_vm_ready)

        missing, missing_vms = await asyncio.gather(wait_hosts(), wait_vms())
        if missing:
            names = [by_address[a].name for a in missing]
            details = "; ".join(f"{name}: {sshd.log_tail(ctx.host_dir(name), 200) or 'sshd log empty'}" for name in names[:3])
            raise TimeoutError(
                f"SSH did not answer within {self.ready_timeout:g} s on {len(missing)}/{n} host(s) "
                f"({', '.join(names[:10])}{' …' if len(names) > 10 else ''}); {details}"
            )
        if missing_vms:
            timeout = max(self.ready_timeout, VM_READY_TIMEOUT)
            details = "; ".join(f"{vm.name}: {qemu.serial_tail(vm, 300) or 'console empty'}" for vm in missing_vms[:3])
            raise TimeoutError(f"SSH did not answer within {timeout:g} s on VM(s) {', '.join(vm.name for vm in missing_vms)}; {details}")
        await progress(f"{n} host(s) created in {created:.1f} s, all SSH-ready after {time.monotonic() - t0:.1f} s")

    async def _push_etc_hosts(self, ctx: Context, vms: list[HostRecord], progress: Progress) -> None:
        """The running VMs kept across a change of the host list get the new /etc/hosts over SSH
        (a namespace host's is rewritten in place; a VM read its own copy at boot). A VM that
        cannot be reached keeps its old list: said, not fatal (refresh reports a dead VM)."""
        running = [r for r in vms if (h := r.handle) is not None and qemu.running(h)]
        if not running:
            return
        script = "cat > /etc/hosts"

        async def push(r: HostRecord) -> Optional[str]:
            with open(os.path.join(ctx.host_dir(r.name), "etc-hosts")) as f:
                text = f.read()
            argv = ["ssh", "-F", os.path.join(ctx.run_dir, "ssh_config"), r.name, script]
            result = await run(argv, what=f"updating {r.name}'s /etc/hosts", input=text, cancelled=self.cancelled, check=False)
            return None if result.returncode == 0 else f"{r.name} ({(result.stderr.strip().splitlines() or ['ssh failed'])[-1]})"

        failed = [f for f in await asyncio.gather(*(push(r) for r in running)) if f]
        if failed:
            await progress(f"could not update /etc/hosts on {', '.join(failed)}")

    def _write_host_lists(self, ctx: Context) -> None:
        """known_hosts, ssh_config and every host's /etc/hosts (rewritten in place) from the records."""
        hosts = [(r.name, r.address) for r in ctx.records.values() if r.address]
        text = sshd.etc_hosts_text(hosts)
        for r in ctx.records.values():
            if os.path.isdir(ctx.host_dir(r.name)):  # a VM's copy: read at its boot (fw_cfg), pushed after
                sshd.write_etc_hosts(ctx.host_dir(r.name), text)
        keys = [(r.name, r.address, r.host_key) for r in ctx.records.values() if r.address and r.host_key]
        write_private(os.path.join(ctx.run_dir, "known_hosts"), known_hosts_text(keys), 0o644)
        write_private(os.path.join(ctx.run_dir, "ssh_config"), ssh_config_text(ctx.run_dir, ctx.switch, hosts), 0o644)

    # ---- state -----------------------------------------------------------------------------

    def _state(self, ctx: Context, only: Optional[set[str]] = None) -> dict[str, Any]:
        listed = [r for r in ctx.records.values() if r.address and (only is None or r.name in only)]
        return {
            "backend": "local",
            "id": ctx.id,
            "hosts": [
                {
                    "name": r.name,
                    "address": r.address,
                    "roles": list(r.roles or []),
                    "networks": [dict(n) for n in r.networks],
                    "group": r.group,
                }
                for r in listed
            ],
            "networks": [{"id": n.id, "cidr": str(n.cidr), "roles": list(n.roles) if n.roles is not None else None} for n in ctx.networks],
            "ssh": {
                "user": "root",
                "port": 22,
                "privateKey": ctx.private_key,
                "publicKey": ctx.public_key,
                "knownHosts": known_hosts_text([(r.name, r.address, r.host_key) for r in listed if r.address and r.host_key]),
                "proxyCommand": proxy_command(ctx.switch),
            },
            "local": {
                "prefix": ctx.prefix,
                "runDir": ctx.run_dir,
                "switchNamespace": ctx.switch,
                "sshConfig": os.path.join(ctx.run_dir, "ssh_config"),
                "hosts": {r.name: _host_state(r) for r in ctx.records.values()},
            },
        }

    def _snapshot(self, ctx: Context) -> dict[str, Any]:
        """The state of what exists right now (after a failure): every created namespace is
        recorded under `local`, and `hosts` lists the hosts whose sshd is alive."""
        for r in ctx.records.values():
            if r.kind != "vm" and r.sshd_pid is None:
                r.sshd_pid = sshd.read_pid(ctx.host_dir(r.name))
                r.sshd_start = sshd.start_time(r.sshd_pid)
        switch_up = namespace_id(ctx.switch) is not None
        alive = {r.name for r in ctx.records.values() if switch_up and _alive(r)}
        return self._state(ctx, alive)

    def _raise_if_cancelled(self, state: Optional[dict[str, Any]]) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise ReservationError("cancelled before anything was changed", state)


# ---- helpers -------------------------------------------------------------------------------------


def _bare_state(prefix: str, run_dir: str) -> dict[str, Any]:
    """Enough state for release() to sweep a reservation known only by its prefix and run dir."""
    return {
        "backend": "local",
        "id": reservation_id(prefix),
        "hosts": [],
        "networks": [],
        "local": {
            "prefix": prefix,
            "runDir": run_dir,
            "switchNamespace": switch_namespace(prefix),
            "sshConfig": os.path.join(run_dir, "ssh_config"),
            "hosts": {},
        },
    }


def _host_state(r: HostRecord) -> dict[str, Any]:
    """A host's entry under `local.hosts` (VMs: their QEMU's recorded handle, size and image)."""
    entry: dict[str, Any] = {"namespace": r.namespace, "sshdPid": r.sshd_pid, "sshdStartTime": r.sshd_start, "group": r.group}
    if r.kind == "vm":
        entry.update(kind="vm", size=dict(r.size or {}), vm=dict(r.vm) if r.vm else None)
    return entry


def _new_record(prefix: str, host: PlannedHost, group: MachineGroup, address: str) -> HostRecord:
    if group.kind == "vm" and group.vm is not None:
        size = {"cores": group.vm.cores, "memoryMb": group.vm.memory_mb, "image": group.vm.image}
        return HostRecord(host.name, list(host.roles), host.group, "", address, kind="vm", size=size)
    return HostRecord(host.name, list(host.roles), host.group, host_namespace(prefix, host.name), address)


def _same_kind(r: HostRecord, group: MachineGroup) -> bool:
    """Whether an existing host is what its group now asks for (kind, a VM's size and image)."""
    if group.kind != r.kind:
        return False
    if group.kind != "vm" or group.vm is None:
        return True
    size = r.size or {}
    return (size.get("cores"), size.get("memoryMb"), size.get("image")) == (group.vm.cores, group.vm.memory_mb, group.vm.image)


def _vm_running(vm: Optional[dict[str, Any]]) -> bool:
    return bool(vm) and qemu.running(qemu.VmHandle.from_state(vm))  # type: ignore[arg-type]


def _recorded_vms(local: dict[str, Any]) -> list[qemu.VmHandle]:
    return [qemu.VmHandle.from_state(h["vm"]) for h in (local.get("hosts") or {}).values() if h.get("kind") == "vm" and h.get("vm")]


def _vms_in_run_dir(run_dir: str, prefix: str) -> list[qemu.VmHandle]:
    """For a state that records no hosts (a leftover known by its run dir): the VMs start_vm
    recorded in the hosts' directories (stop_vm checks each is that very QEMU)."""
    if os.path.basename(os.path.normpath(run_dir)) != prefix:
        return []
    try:
        names = os.listdir(os.path.join(run_dir, "hosts"))
    except OSError:
        return []
    return [vm for name in sorted(names) if (vm := qemu.load_vm(sshd.host_dir(run_dir, name))) is not None]


async def _stop_vms(vms: list[qemu.VmHandle], progress: Progress) -> None:
    """Stop these VMs' QEMUs (each only if still that very process) and remove their overlays."""
    if any(qemu.running(vm) for vm in vms):
        await progress(f"stopping {sum(qemu.running(vm) for vm in vms)} VM(s)")
    await _gather_all([qemu.stop_vm(vm) for vm in vms])


def _recorded_sshds(local: dict[str, Any]) -> list[tuple[str, str, Optional[int], Optional[int]]]:
    """(host, namespace, sshd pid, its start time) of every host a state records."""
    return [(name, h.get("namespace", ""), h.get("sshdPid"), h.get("sshdStartTime")) for name, h in (local.get("hosts") or {}).items()]


def _sshds_in_run_dir(run_dir: str, prefix: str) -> list[tuple[str, str, Optional[int], Optional[int]]]:
    """For a state that records no hosts (a leftover known by its run dir): each host's sshd from
    its pid file, kept only if it is provably that host's: its /etc/ssh is the very directory
    the run dir holds for the host (same inode), which no other process can have."""
    found: list[tuple[str, str, Optional[int], Optional[int]]] = []
    if os.path.basename(os.path.normpath(run_dir)) != prefix:
        return found
    try:
        names = os.listdir(os.path.join(run_dir, "hosts"))
    except OSError:
        return found
    for name in names:
        pid = sshd.read_pid(sshd.host_dir(run_dir, name))
        try:
            mine = os.stat(os.path.join(sshd.host_dir(run_dir, name), "etc-ssh"))
            theirs = os.stat(f"/proc/{pid}/root/etc/ssh") if pid else None
        except OSError:
            continue
        if theirs is not None and (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
            found.append((name, host_namespace(prefix, name), pid, sshd.start_time(pid)))
    return found


def _networks(spec: ReservationSpec) -> list[Network]:
    nets = []
    for k, n in enumerate(spec.networks):
        cidr = parse_cidr(n.cidr, k)
        if cidr is None:
            raise ReservationError(f"networks[{k}].cidr `{n.cidr}` is not a valid IPv4 network", None)
        nets.append(Network(n.id, cidr, list(n.roles) if n.roles is not None else None))
    return nets


def _assign_experiment_addresses(ctx: Context, plan: list[PlannedHost], new: list[HostRecord]) -> None:
    """Give `new` hosts their experiment addresses, lowest free, avoiding the other hosts'."""
    members = {h.name: h.networks for h in plan}
    new_names = {r.name for r in new}
    for k, net in enumerate(ctx.networks):
        used = [n["address"] for r in ctx.records.values() if r.name not in new_names for n in r.networks if n["id"] == net.id]
        joining = [r for r in new if k in members[r.name]]
        for r, address in zip(joining, allocate(net.cidr, len(joining), used)):
            r.networks.append({"id": net.id, "address": address, "interface": interface(k), "cidr": str(net.cidr)})


def _wiring(ctx: Context, r: HostRecord) -> HostWiring:
    index = {n.id: k for k, n in enumerate(ctx.networks)}
    assert r.address is not None
    return HostWiring(
        r.namespace,
        slot(r.address),
        r.address,
        [(index[n["id"]], n["address"], ctx.networks[index[n["id"]]].cidr.prefixlen) for n in r.networks],
    )


def _network_ids(r: HostRecord) -> list[str]:
    return [n["id"] for n in r.networks]


def _pid_in_namespace(pid: Optional[int], namespace: str) -> bool:
    """The recorded sshd still runs, and inside that very namespace (not a reused pid)."""
    if not isinstance(pid, int) or not pids.alive(pid):
        return False
    ns = namespace_id(namespace)
    if ns is None or process_namespace(pid) != ns:
        return False
    return sshd.is_sshd(pid)


def _alive(r: HostRecord) -> bool:
    if r.kind == "vm":
        return _vm_running(r.vm)
    return _pid_in_namespace(r.sshd_pid, r.namespace)


def _load(state: dict[str, Any]) -> Context:
    local = state["local"]
    ssh = state.get("ssh", {})
    nets = [Network(n["id"], ipaddress.IPv4Network(n["cidr"]), n.get("roles")) for n in state.get("networks", [])]
    ctx = Context(local["prefix"], local["runDir"], nets, ssh.get("privateKey") or "", (ssh.get("publicKey") or "").strip())
    known = parse_known_hosts(ssh.get("knownHosts", ""))
    listed = {h["name"]: h for h in state.get("hosts", [])}
    for name, h in local.get("hosts", {}).items():
        seen = listed.get(name)
        ctx.records[name] = HostRecord(
            name=name,
            roles=list(seen["roles"]) if seen else None,
            group=h.get("group", 0),
            namespace=h["namespace"],
            address=seen["address"] if seen else None,
            networks=[dict(n) for n in seen.get("networks", [])] if seen else [],
            sshd_pid=h.get("sshdPid"),
            sshd_start=h.get("sshdStartTime"),
            host_key=known.get(name),
            kind=h.get("kind") or "host",
            size=h.get("size"),
            vm=h.get("vm"),
        )
    return ctx


def _restore_run_dir(ctx: Context) -> None:
    """Recreate the run dir and client key files from state if something removed them."""
    os.makedirs(ctx.run_dir, mode=0o700, exist_ok=True)
    key = os.path.join(ctx.run_dir, "id")
    if ctx.private_key and not os.path.exists(key):
        write_private(key, ctx.private_key, 0o600)
    if ctx.public_key and not os.path.exists(key + ".pub"):
        write_private(key + ".pub", ctx.public_key + "\n", 0o644)
    if manifest.read(ctx.run_dir) is None:
        manifest.write(
            ctx.run_dir,
            {
                "owner": "",
                "prefix": ctx.prefix,
                "status": manifest.READY,
                "creatorPid": os.getpid(),
                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
    for r in ctx.records.values():  # host keys of kept hosts, when state lost them
        if r.host_key is None:
            pub = os.path.join(ctx.host_dir(r.name), "etc-ssh", HOST_KEY + ".pub")
            if os.path.exists(pub):
                r.host_key = read_public(pub)


async def _gather_all(aws: list) -> None:
    """Run all to completion (no task is left running behind an error), then raise the first error."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for err in errors:
        if isinstance(err, Cancelled):
            raise err
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise RuntimeError(f"{_describe(errors[0], 'creating hosts')} (and {len(errors) - 1} more failure(s))") from errors[0]


async def _unmount_below(path: str) -> None:
    """Detach anything still mounted under the run dir in our mount namespace (normally nothing)."""
    prefix = os.path.normpath(path) + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        await run(["umount", "-l", point], what=f"unmounting {point}", check=False)


def _describe(err: BaseException, doing: str) -> str:
    if isinstance(err, Cancelled):
        return f"cancelled while {doing}"
    if isinstance(err, (CommandError, ReservationError, TimeoutError, RuntimeError, ValueError)):
        return str(err)
    return f"{doing} failed: {type(err).__name__}: {err}"
