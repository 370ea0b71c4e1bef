"""Network namespaces, bridges and veth pairs, created in batches and torn down by pid.

Nothing is ever created in the root namespace: each veth pair is created with both ends placed
directly in their target namespaces. Teardown follows the measured order: TERM every process
inside, wait up to ~2 s, KILL what is left, and only then `ip netns del` (after the delete, a
process that was inside keeps running in an anonymous namespace that nothing can find any more).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

from .addressing import MANAGEMENT, MANAGEMENT_SWITCH
from .commands import CommandError, run
from .naming import bridge, interface, switch_port

NETNS_DIR = "/run/netns"
NsId = tuple[int, int]  # (st_dev, st_ino) of a network namespace


@dataclass
class HostWiring:
    """What one host's namespace needs: its management address and its experiment addresses."""

    namespace: str
    slot: int
    address: str
    experiment: list[tuple[int, str, int]] = field(default_factory=list)  # (network index, address, prefix length)


def mac_for(address: str) -> str:
    """A locally administered MAC derived from the interface's IPv4 address (02:74:<4 bytes>).

    A host recreated with an address it (or another host) had before gets the same MAC again,
    so neighbour caches in the switch and in the other hosts are never stale: without this, a
    repaired host stays unreachable until their ARP entries expire (measured: ~25 s).
    """
    return "02:74:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def namespace_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def namespace_id(name: str) -> Optional[NsId]:
    """The namespace's identity if `name` is a live (mounted) network namespace, else None."""
    try:
        st = os.stat(namespace_path(name))
    except OSError:
        return None
    if st.st_dev != _nsfs_dev():
        return None  # a stale file, not a mounted namespace
    return (st.st_dev, st.st_ino)


def list_namespaces(prefix: str) -> list[str]:
    """Every named network namespace starting with `prefix` (mounted or stale)."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def process_namespace(pid: int) -> Optional[NsId]:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in(targets: Iterable[NsId]) -> list[int]:
    """Pids of all processes inside any of the given namespaces (what `ip netns pids` does, in
    one scan of /proc for all namespaces instead of one per namespace)."""
    wanted = set(targets)
    if not wanted:
        return []
    own = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != own and process_namespace(int(entry)) in wanted:
            found.append(int(entry))
    return found


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


async def add_namespaces(names: list[str], cancelled: Optional[asyncio.Event]) -> None:
    if names:
        await run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names),
                  what=f"creating {len(names)} network namespace(s)", cancelled=cancelled)


async def setup_switch(switch: str, networks: int, cancelled: Optional[asyncio.Event]) -> None:
    """The switch namespace's bridges: br0 (management, holding the access address) and one per
    experiment network. STP stays off, so ports forward at once."""
    lines = ["link set lo up", "link add br0 type bridge",
             f"addr add {MANAGEMENT_SWITCH}/{MANAGEMENT.prefixlen} dev br0", "link set br0 up"]
    for k in range(networks):
        lines += [f"link add {bridge(k)} type bridge", f"link set {bridge(k)} up"]
    await run(["ip", "-n", switch, "-batch", "-"], input="\n".join(lines) + "\n",
              what=f"setting up the bridges in switch namespace {switch}", cancelled=cancelled)


async def wire_hosts(switch: str, hosts: list[HostWiring], cancelled: Optional[asyncio.Event],
                     limit: asyncio.Semaphore, replace_stale: bool = False) -> None:
    """veth pairs (host end `eth0`/`eth{k+1}`, switch end `v<slot>-<port>`), bridge ports, addresses."""
    if not hosts:
        return
    links: list[tuple[HostWiring, Optional[int], str]] = []
    for h in hosts:
        links.append((h, None, h.address))
        links.extend((h, k, address) for k, address, _ in h.experiment)
    if replace_stale:
        # A port of a host deleted moments ago may outlive its namespace briefly (namespaces are
        # freed asynchronously); its name is about to be reused, so remove it now if present.
        await run(["ip", "-force", "-n", switch, "-batch", "-"],
                  input="".join(f"link del {switch_port(h.slot, k)}\n" for h, k, _ in links),
                  what="removing stale switch ports", cancelled=cancelled, check=False)
    await run(["ip", "-batch", "-"],
              input="".join(f"link add {interface(k)} netns {h.namespace} address {mac_for(a)} "
                            f"type veth peer name {switch_port(h.slot, k)} netns {switch}\n" for h, k, a in links),
              what=f"creating veth pairs for {len(hosts)} host(s)", cancelled=cancelled)
    await run(["ip", "-n", switch, "-batch", "-"],
              input="".join(f"link set {switch_port(h.slot, k)} master {bridge(k)} up\n" for h, k, _ in links),
              what="attaching hosts to the bridges", cancelled=cancelled)

    async def configure(h: HostWiring) -> None:
        lines = ["link set lo up", f"addr add {h.address}/{MANAGEMENT.prefixlen} dev eth0", "link set eth0 up"]
        for k, address, prefixlen in h.experiment:
            lines += [f"addr add {address}/{prefixlen} dev {interface(k)}", f"link set {interface(k)} up"]
        async with limit:
            await run(["ip", "-n", h.namespace, "-batch", "-"], input="\n".join(lines) + "\n",
                      what=f"configuring addresses in {h.namespace}", cancelled=cancelled)

    await asyncio.gather(*(configure(h) for h in hosts))


async def stop_processes(targets: list[NsId], cancelled: Optional[asyncio.Event], grace: float = 2.0) -> None:
    """TERM every process inside the namespaces `targets`, KILL what is left after `grace`."""
    pids = await asyncio.to_thread(pids_in, targets)
    if not pids:
        return
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline and not (cancelled and cancelled.is_set()):
        await asyncio.sleep(0.05)
        pids = await asyncio.to_thread(pids_in, targets)
    for _ in range(50):
        if not pids:
            break
        _signal_all(pids, signal.SIGKILL)
        await asyncio.sleep(0.02)
        pids = await asyncio.to_thread(pids_in, targets)
    if pids:
        raise CommandError("stopping the processes of the namespaces", ["kill", "-KILL", *map(str, pids[:10])], None,
                           f"{len(pids)} process(es) survived SIGKILL")


async def teardown(names: list[str], cancelled: Optional[asyncio.Event], grace: float = 2.0) -> None:
    """Stop every process inside `names` (TERM, then KILL after `grace`), then delete them.

    Idempotent: names already gone are skipped. On Cancel the grace period is cut short, but
    the namespaces are still emptied and deleted (leaving them would orphan them).
    """
    present = [n for n in names if os.path.lexists(namespace_path(n))]
    if not present:
        return
    await stop_processes([i for i in (namespace_id(n) for n in present) if i is not None], cancelled, grace)
    result = await run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in present),
                       what=f"deleting {len(present)} network namespace(s)", check=False)
    left = [n for n in present if os.path.lexists(namespace_path(n))]
    if left:
        raise CommandError(f"deleting network namespaces {', '.join(left[:5])}", ["ip", "netns", "del", left[0]],
                           result.returncode, result.stderr)


@dataclass
class Link:
    """One veth pair described by hand, for callers with their own address plan and bridges
    (the Grid'5000 emulator): `device` inside `namespace`, `port` on `bridge` in the switch
    namespace, and an optional `address` (`a.b.c.d/len`) on the device."""

    namespace: str
    device: str
    port: str
    bridge: str
    mac: str
    address: Optional[str] = None


async def add_links(switch: str, links: list[Link], cancelled: Optional[asyncio.Event], limit: asyncio.Semaphore) -> None:
    """Create, plug and address `links` the way wire_hosts does (both ends created directly in
    their namespaces, nothing in the root namespace), with caller-chosen names and addresses."""
    if not links:
        return
    await run(["ip", "-batch", "-"],
              input="".join(f"link add {l.device} netns {l.namespace} address {l.mac} "
                            f"type veth peer name {l.port} netns {switch}\n" for l in links),
              what=f"creating {len(links)} veth pair(s)", cancelled=cancelled)
    await run(["ip", "-n", switch, "-batch", "-"],
              input="".join(f"link set {l.port} master {l.bridge} up\n" for l in links),
              what="attaching interfaces to the bridges", cancelled=cancelled)
    per_ns: dict[str, list[Link]] = {}
    for l in links:
        per_ns.setdefault(l.namespace, []).append(l)

    async def configure(namespace: str, mine: list[Link]) -> None:
        lines = ["link set lo up"]
        for l in mine:
            if l.address:
                lines.append(f"addr add {l.address} dev {l.device}")
            lines.append(f"link set {l.device} up")
        async with limit:
            await run(["ip", "-n", namespace, "-batch", "-"], input="\n".join(lines) + "\n",
                      what=f"configuring addresses in {namespace}", cancelled=cancelled)

    await asyncio.gather(*(configure(ns, mine) for ns, mine in per_ns.items()))
