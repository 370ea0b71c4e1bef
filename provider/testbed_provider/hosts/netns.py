"""Network namespaces, bridges and veth pairs, created in batches and torn down by pid.

Nothing is ever created in the root namespace: each veth pair is created with both ends placed
directly in their target namespaces. Teardown follows the measured order: TERM every process
inside, wait up to ~2 s, KILL what is left, and only then `ip netns del` (after the delete, a
process that was inside keeps running in an anonymous namespace that nothing can find any more).
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from typing import Iterable, Optional

from ..common import deadlines
from .commands import CommandError, run

NETNS_DIR = "/run/netns"
NsId = tuple[int, int]  # (st_dev, st_ino) of a network namespace


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
        await run(
            ["ip", "-batch", "-"],
            input="".join(f"netns add {n}\n" for n in names),
            what=f"creating {len(names)} network namespace(s)",
            cancelled=cancelled,
        )


async def stop_processes(targets: list[NsId], cancelled: Optional[asyncio.Event], grace: float = 2.0) -> None:
    """TERM every process inside the namespaces `targets`, KILL what is left after `grace`."""
    pids = await asyncio.to_thread(pids_in, targets)
    if not pids:
        return
    _signal_all(pids, signal.SIGTERM)
    deadline = deadlines.after(grace)
    while pids and not deadlines.passed(deadline) and not (cancelled and cancelled.is_set()):
        await asyncio.sleep(0.05)
        pids = await asyncio.to_thread(pids_in, targets)
    for _ in range(50):
        if not pids:
            break
        _signal_all(pids, signal.SIGKILL)
        await asyncio.sleep(0.02)
        pids = await asyncio.to_thread(pids_in, targets)
    if pids:
        raise CommandError(
            "stopping the processes of the namespaces",
            ["kill", "-KILL", *map(str, pids[:10])],
            None,
            f"{len(pids)} process(es) survived SIGKILL",
        )


async def teardown(names: list[str], cancelled: Optional[asyncio.Event], grace: float = 2.0) -> None:
    """Stop every process inside `names` (TERM, then KILL after `grace`), then delete them.

    Idempotent: names already gone are skipped. On Cancel the grace period is cut short, but
    the namespaces are still emptied and deleted (leaving them would orphan them).
    """
    present = [n for n in names if os.path.lexists(namespace_path(n))]
    if not present:
        return
    await stop_processes([i for i in (namespace_id(n) for n in present) if i is not None], cancelled, grace)
    result = await run(
        ["ip", "-force", "-batch", "-"],
        input="".join(f"netns del {n}\n" for n in present),
        what=f"deleting {len(present)} network namespace(s)",
        check=False,
    )
    left = [n for n in present if os.path.lexists(namespace_path(n))]
    if left:
        raise CommandError(
            f"deleting network namespaces {', '.join(left[:5])}", ["ip", "netns", "del", left[0]], result.returncode, result.stderr
        )


@dataclass
class Link:
    """One veth pair, in the caller's own names and address plan: `device` inside `namespace`,
    `port` on `bridge` in the switch namespace, and an optional `address` (`a.b.c.d/len`) on the
    device."""

    namespace: str
    device: str
    port: str
    bridge: str
    mac: str
    address: Optional[str] = None


async def add_links(switch: str, links: list[Link], cancelled: Optional[asyncio.Event], limit: asyncio.Semaphore) -> None:
    """Create, plug and address `links`: both ends created directly in their namespaces (nothing
    in the root namespace), ports attached to their bridges, addresses set and devices up."""
    if not links:
        return
    await run(
        ["ip", "-batch", "-"],
        input="".join(
            f"link add {link.device} netns {link.namespace} address {link.mac} type veth peer name {link.port} netns {switch}\n"
            for link in links
        ),
        what=f"creating {len(links)} veth pair(s)",
        cancelled=cancelled,
    )
    await run(
        ["ip", "-n", switch, "-batch", "-"],
        input="".join(f"link set {link.port} master {link.bridge} up\n" for link in links),
        what="attaching interfaces to the bridges",
        cancelled=cancelled,
    )
    per_ns: dict[str, list[Link]] = {}
    for link in links:
        per_ns.setdefault(link.namespace, []).append(link)

    async def configure(namespace: str, mine: list[Link]) -> None:
        lines = ["link set lo up"]
        for link in mine:
            if link.address:
                lines.append(f"addr add {link.address} dev {link.device}")
            lines.append(f"link set {link.device} up")
        async with limit:
            await run(
                ["ip", "-n", namespace, "-batch", "-"],
                input="\n".join(lines) + "\n",
                what=f"configuring addresses in {namespace}",
                cancelled=cancelled,
            )

    await asyncio.gather(*(configure(ns, mine) for ns, mine in per_ns.items()))
