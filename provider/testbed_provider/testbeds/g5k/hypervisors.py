"""`kind: vm` on Grid'5000: the project's VMs on the reservation's nodes, VMonG5k's way.

Each node that hosts VMs gets QEMU (from its Debian mirror when its environment lacks it), the
image once (kept under VM_ROOT by its key, so a node's later reservations skip the upload), a
KVM probe (the nodes' KVM works on Grid'5000; an emulated node here has none and runs TCG) and
`br0` carrying its production NIC. Each VM then boots from an overlay with the MAC of its subnet
address, takes that address from the site's DHCP, and is reached through the same ProxyCommand
as the nodes, its host key generated here and pinned before it boots (never trusted on first use).

Everything runs over SSH as root with the reservation's key (the commands: hosts/vm/remote.py).
A VM is in the state as soon as its QEMU started, so a failure later releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shlex
import tempfile
import time
from typing import Any, Iterator, Optional

from ...common import deadlines, processes
from ...common.private_files import write_private
from ...common.tasks import all_or_none
from ...common.ticking import ticking
from ...hosts.keys import generate, read_public
from ...hosts.vm import remote
from ...hosts.vm.image import DISK, INITRD, KERNEL, VmImage
from ...hosts.vm.qemu import PROBE_TIMEOUT
from ..base import Progress, ReservationError, VmSize
from .session import Cancelled
from .ssh import scp_argv, ssh_argv, wait_and_pin
from .vms import PlannedVm

VM_ROOT = "/tmp/tb-vms"  # on the nodes: image-<key>/ and <reservation id>/<vm>/
VM_READY_TIMEOUT = float(os.environ.get("PULUMI_TESTBED_G5K_VM_READY_TIMEOUT", "300"))
INSTALL_TIMEOUT = 900.0
UPLOAD_TIMEOUT = 1800.0
COMMAND_TIMEOUT = 120.0
PARALLEL = 8  # nodes prepared (and VMs started) at once


class Nodes:
    """Commands and copies to the reservation's machines as root through the ProxyCommand,
    host keys checked against `known_hosts` (pinned; a new machine is added on first use)."""

    def __init__(self, user: str, key_path: str, known_hosts: str, proxy_command: str, stop: asyncio.Event) -> None:
        self.user, self.key_path, self.known_hosts, self.proxy, self.stop = user, key_path, known_hosts, proxy_command, stop

    async def _run(self, argv: list[str], what: str, timeout: float) -> str:
        done = await processes.run(argv, env=None, deadline=deadlines.after(timeout), cancelled=self.stop)
        if done.outcome == processes.CANCELLED:
            raise Cancelled()
        if done.outcome == processes.TIMED_OUT:
            raise ReservationError(f"{what}: not done within {timeout:g} s")
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            raise ReservationError(f"{what}: {lines[-1] if lines else f'exit {done.returncode}'}")
        return done.stdout.decode(errors="replace")

    async def run(self, address: str, command: str, what: str, timeout: float = COMMAND_TIMEOUT) -> str:
        argv = ssh_argv(address, self.user, self.key_path, self.known_hosts, self.proxy, command)
        return await self._run(argv, f"{what} on {address}", timeout)

    async def copy(self, source: str, address: str, target: str, what: str, timeout: float = UPLOAD_TIMEOUT) -> None:
        argv = scp_argv(source, address, self.user, target, self.key_path, self.known_hosts, self.proxy)
        await self._run(argv, f"{what} to {address}", timeout)


@contextlib.contextmanager
def nodes_from_state(state: dict[str, Any], stop: asyncio.Event) -> Iterator[Nodes]:
    """A Nodes for later calls (refresh, destroy): the reservation's key and the hypervisors'
    pinned keys written to a private temporary directory, removed afterwards."""
    ssh = state["ssh"]
    with tempfile.TemporaryDirectory(prefix="tb-g5k-vms-") as work:
        key, known = os.path.join(work, "id"), os.path.join(work, "known_hosts")
        write_private(key, ssh.get("privateKey") or "", 0o600)
        lines = [f"{h['address']} {h['hostKey']}\n" for h in state.get("g5k", {}).get("hypervisors", []) if h.get("hostKey")]
        write_private(known, "".join(lines), 0o600)
        yield Nodes(ssh["user"], key, known, ssh.get("proxyCommand") or "", stop)


def image_key(image: VmImage) -> str:
    """The name of the image on a node: the recipe's key, plus the disk's identity for a
    user's own disk (booted with the project's kernel)."""
    st = os.stat(image.disk)
    ident = f"{image.key}:{os.path.realpath(image.disk)}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def run_dir(state_id: str, name: str) -> str:
    return f"{VM_ROOT}/{state_id}/{name}"


async def prepare(nodes: Nodes, address: str, device: str, image: VmImage, progress: Progress, accel: Optional[str] = None) -> str:
    """QEMU, the image, `br0` on one node; returns the accelerator its KVM probe found (no
    probe when `accel` is already known)."""
    image_dir = f"{VM_ROOT}/image-{image_key(image)}"
    async with ticking(progress, lambda t: f"{address}: still checking for QEMU or installing it ({t:.0f} s)"):
        await nodes.run(address, remote.install_command(), "installing QEMU", INSTALL_TIMEOUT)
    if (await nodes.run(address, remote.has_image_command(image_dir), "looking for the VM image")).strip() != "yes":
        size = sum(os.path.getsize(p) for p in (image.kernel, image.initrd, image.disk)) >> 20
        await progress(f"uploading the VM image ({size} MB) to {address}")
        upload = f"{image_dir}.up-{secrets.token_hex(3)}"
        try:
            await nodes.run(address, f"mkdir -p {shlex.quote(upload)}", "making the image directory")
            async with ticking(progress, lambda t: f"{address}: still uploading the VM image ({size} MB, {t:.0f} s)"):
                for source, name in ((image.kernel, KERNEL), (image.initrd, INITRD), (image.disk, DISK)):
                    await nodes.copy(source, address, f"{upload}/{name}", f"uploading {name}")
            await nodes.run(address, remote.place_image_command(upload, image_dir), "placing the VM image")
        except BaseException:  # a partial upload is hundreds of MB: never left behind
            with contextlib.suppress(ReservationError, Cancelled, OSError):
                await nodes.run(address, f"rm -rf {shlex.quote(upload)}", "removing a partial upload", 30)
            raise
    forced = os.environ.get("PULUMI_TESTBED_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        accel = forced
    elif accel not in ("kvm", "tcg"):
        await progress(f"{address}: probing KVM (a guest that must boot within {PROBE_TIMEOUT:g} s)")
        accel = (await nodes.run(address, remote.probe_command(image_dir, PROBE_TIMEOUT), "probing KVM", PROBE_TIMEOUT + 60)).strip()
    answer = await nodes.run(address, remote.bridge_command(device), f"bridging {device} onto {remote.BRIDGE}")
    if not answer.strip().endswith("ok"):
        raise ReservationError(f"bridging {device} onto {remote.BRIDGE} on {address} failed: {answer.strip()[-300:]}")
    return accel if accel in ("kvm", "tcg") else "tcg"


async def start_vms(
    nodes: Nodes,
    planned: list[PlannedVm],
    hypervisors: dict[str, dict[str, Any]],
    sizes: dict[int, VmSize],
    images: dict[int, VmImage],
    authorized_key: str,
    state_id: str,
    records: list[dict[str, Any]],
    work: str,
    progress: Progress,
    indices: Optional[dict[str, int]] = None,
) -> dict[str, str]:
    """Prepare every hypervisor, start every VM (appending each to `records` once its QEMU
    runs), wait for their SSH; returns VM name → its host key (`<type> <base64>`).
    `hypervisors`: node FQDN → {address, device}; `images`: VM group → its image (a node's
    VMs are of one group); `indices`: each VM's number in the reservation (its tap device),
    by default its place in `planned`. A node prepared before (its accelerator recorded in
    `hypervisors`) is not probed again."""
    limit = asyncio.Semaphore(PARALLEL)
    used = sorted({vm.node for vm in planned}, key=lambda n: [vm.node for vm in planned].index(n))
    await progress(f"preparing {len(used)} node(s) for {len(planned)} VM(s): QEMU, the image, a KVM probe, {remote.BRIDGE}")
    accels: dict[str, str] = {}
    image_of = {vm.node: images[vm.group] for vm in planned}

    async def prepare_one(fqdn: str) -> None:
        async with limit:
            h = hypervisors[fqdn]
            accels[fqdn] = await prepare(nodes, h["address"], h["device"], image_of[fqdn], progress, h.get("accel"))
            h["accel"] = accels[fqdn]

    await all_or_none([prepare_one(n) for n in used])
    kinds = sorted(set(accels.values()))
    await progress(f"starting {len(planned)} VM(s) on {len(used)} node(s) ({', '.join(kinds)})")
    host_keys: dict[str, str] = {}

    async def start_one(index: int, vm: PlannedVm) -> None:
        async with limit:
            address, directory = hypervisors[vm.node]["address"], run_dir(state_id, vm.name)
            key = os.path.join(work, f"hostkey-{vm.name}")
            await generate(key, f"{vm.name} host key", nodes.stop)
            host_keys[vm.name] = read_public(key + ".pub")
            # recorded before anything starts: whatever follows, destroy stops it (by its pid file)
            records.append(
                {
                    "name": vm.name,
                    "site": vm.site,
                    "address": vm.address,
                    "mac": vm.mac,
                    "node": vm.node,
                    "nodeAddress": address,
                    "runDir": directory,
                    "pid": 0,
                }
            )
            record = records[-1]
            await nodes.run(address, f"mkdir -p {shlex.quote(directory)}", f"making {vm.name}'s run directory")
            await nodes.copy(key, address, f"{directory}/hostkey", f"copying {vm.name}'s host key", COMMAND_TIMEOUT)
            size = sizes.get(vm.group) or VmSize(1, 512)
            command = remote.start_command(
                vm.name,
                image_dir=f"{VM_ROOT}/image-{image_key(images[vm.group])}",
                run_dir=directory,
                mac=vm.mac,
                authorized_key=authorized_key,
                tap=f"tbv{index}",
                cores=size.cores,
                memory_mb=size.memory_mb,
                accel=accels[vm.node],
            )
            out = await nodes.run(address, command, f"starting {vm.name}")
            words = out.split()
            if not words or not words[-1].isdigit():
                raise ReservationError(f"starting {vm.name} on {address} printed no QEMU pid: {out.strip()[-200:]!r}")
            record["pid"] = int(words[-1])

    await all_or_none([start_one((indices or {}).get(vm.name, k), vm) for k, vm in enumerate(planned)])
    await wait_ready(nodes, planned, hypervisors, host_keys, state_id, work, progress)
    return host_keys


async def wait_ready(
    nodes: Nodes,
    planned: list[PlannedVm],
    hypervisors: dict[str, dict[str, Any]],
    host_keys: dict[str, str],
    state_id: str,
    work: str,
    progress: Progress,
) -> None:
    """Every VM answers SSH with the host key it was given; a VM that does not within
    VM_READY_TIMEOUT fails the reservation, naming it with the end of its console."""
    ready, started = 0, time.monotonic()

    async def one(vm: PlannedVm) -> None:
        nonlocal ready
        try:
            key = await wait_and_pin(vm.address, nodes.user, nodes.key_path, work, nodes.proxy, VM_READY_TIMEOUT, nodes.stop)
        except TimeoutError as err:
            tail = await _console_tail(nodes, hypervisors[vm.node]["address"], run_dir(state_id, vm.name))
            raise ReservationError(f"VM {vm.name} on {vm.node}: {err}; its console ends: {tail}") from err
        if key != host_keys[vm.name]:
            raise ReservationError(f"VM {vm.name} at {vm.address} presented host key {key}, not the one it was given")
        ready += 1
        await progress(f"{ready}/{len(planned)} VMs SSH-ready ({time.monotonic() - started:.0f} s)")

    await all_or_none([one(vm) for vm in planned])


async def _console_tail(nodes: Nodes, address: str, directory: str) -> str:
    try:
        text = await nodes.run(address, f"tail -c 400 {directory}/serial.log", "reading a VM console", 30)
    except (ReservationError, Cancelled) as err:
        return f"(unreadable: {err})"
    return " ".join(text.split()) or "(empty)"


async def stop_vms(state: dict[str, Any], stop: asyncio.Event, progress: Progress) -> None:
    """Stop every recorded VM (QEMU killed, overlay and run directory removed), one SSH
    session per node. Never raises: a node that cannot be reached is said (its job's end
    reboots it on Grid'5000), then the jobs are deleted all the same."""
    records = state.get("g5k", {}).get("vms", [])
    if not records:
        return
    per_node: dict[str, list[dict[str, Any]]] = {}
    for vm in records:
        per_node.setdefault(vm["nodeAddress"], []).append(vm)
    with nodes_from_state(state, stop) as nodes:

        async def one(address: str, vms: list[dict[str, Any]]) -> None:
            command = "; ".join(remote.stop_command(vm["runDir"]) for vm in vms)
            top = shlex.quote(f"{VM_ROOT}/{state['id']}")
            command += f"; rmdir {top} 2>/dev/null; true"
            try:
                await nodes.run(address, command, f"stopping {len(vms)} VM(s)", 60)
                await progress(f"stopped {len(vms)} VM(s) on {address}: {', '.join(vm['name'] for vm in vms)}")
            except ReservationError as err:
                await progress(f"could not stop the VMs on {address} ({err}); deleting the job stops them")

        await asyncio.gather(*(one(a, v) for a, v in per_node.items()), return_exceptions=True)


async def dead_vms(state: dict[str, Any], sites: set[str], stop: asyncio.Event) -> set[str]:
    """Names of the recorded VMs on `sites` whose QEMU is gone. A node that does not answer
    tells nothing: its VMs are not called dead."""
    records = [vm for vm in state.get("g5k", {}).get("vms", []) if vm.get("site") in sites]
    if not records:
        return set()
    per_node: dict[str, list[dict[str, Any]]] = {}
    for vm in records:
        per_node.setdefault(vm["nodeAddress"], []).append(vm)
    dead: set[str] = set()
    with nodes_from_state(state, stop) as nodes:

        async def one(address: str, vms: list[dict[str, Any]]) -> None:
            try:
                out = await nodes.run(address, remote.alive_command([int(vm["pid"] or 0) for vm in vms]), "checking VMs", 30)
            except (ReservationError, Cancelled, OSError):
                return
            alive = {int(p) for p in out.split() if p.isdigit()}
            dead.update(vm["name"] for vm in vms if int(vm["pid"] or 0) not in alive)

        await asyncio.gather(*(one(a, v) for a, v in per_node.items()))
    return dead


async def push_etc_hosts(nodes: Nodes, hosts: list[dict[str, Any]], progress: Progress) -> None:
    """Every host of a reservation with VMs names all of them in /etc/hosts, as on the local
    testbed: Grid'5000's DNS knows the nodes, not the VMs."""
    entries = [(h["address"], [h["name"]] + ([h["fqdn"]] if h.get("fqdn") and h["fqdn"] != h["name"] else [])) for h in hosts]
    command = remote.etc_hosts_command(entries)
    limit = asyncio.Semaphore(PARALLEL)

    async def one(host: dict[str, Any]) -> None:
        async with limit:
            await nodes.run(host["address"], command, f"writing {host['name']}'s /etc/hosts")

    await all_or_none([one(h) for h in hosts])
    await progress(f"{len(hosts)} host(s) name each other in /etc/hosts")
