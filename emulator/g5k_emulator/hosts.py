"""Running nodes as real local hosts (needs root), built with the provider's host toolkit
(`testbed_provider.hosts`, which the local backend is built with too).

Layout (instance id `<inst>`, 6 hex digits kept in the state file so a restarted emulator finds
what a crashed one left behind):
  - switch namespace `tbemu-<inst>-sw`: bridge `p<i>` per site (the production network, with the
    site gateway address and the site's subnet gateway, with dnsmasq giving each g5ksubnet
    address to its VMonG5k MAC: dhcp.py), bridge `v<i>-<k>` per site vlan (with the vlan gateway address .254);
  - node namespace `tbemu-<inst>-<node uid>` while the node's job runs: `eth0` with the node's
    reference IP on its site bridge, `eth1` (nodes that have one) plugged on the site bridge
    without an address until KaVLAN moves it; one sshd (the toolkit's `sshd`).
The `tbemu-` prefix is not matched by the local backend's `tb-` names or orphan sweep.

Who logs in: root, with the job owner's registered public keys (the emulator's `--user`
option; real Grid'5000 logs you in as yourself, root needs a deployment); after a deployment
with `key`, root with that key, and the node has a fresh host key (kadeploy reinstalls it).
Clients reach nodes by their reference IP through `ip netns exec <switch> nc %h %p`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
import time
from typing import Any, Callable, Optional

from testbed_provider.common.private_files import write_private
from testbed_provider.hosts import keys, netns, sshd
from testbed_provider.hosts.commands import run
from testbed_provider.hosts.readiness import wait_for_ssh

from . import reference as ref
from .clock import Clock
from .deployments import Deployments
from .dhcp import Dhcp
from .jobs import Jobs
from .kavlan import Kavlan, Move
from .reference import Node
from .store import Store

log = logging.getLogger("g5k_emulator.hosts")
PREFIX = "tbemu-"
READY_TIMEOUT = 60.0
DEFAULT = "DEFAULT"


def site_bridge(site: ref.SiteSpec) -> str:
    return f"p{site.index}"


def vlan_bridge(site: ref.SiteSpec, vlan: int) -> str:
    """One bridge per vlan; a global vlan's bridge is its home site's, shared by every site."""
    home = ref.global_home(vlan) or site
    return f"v{home.index}-{ref.vlan_slot(home, vlan)}"


def port(node: Node, site: ref.SiteSpec, device: str) -> str:
    return f"n{site.index}-{node.index}-{device[-1]}"


def mac(site: ref.SiteSpec, node: Node, device: str) -> str:
    return f"02:65:{site.index:02x}:{int(device[-1]):02x}:{node.index // 256:02x}:{node.index % 256:02x}"


ROUTED_RANGE = "198.18.0.0/15"  # every production, subnet and vlan network of the emulator


def routed(vlan: str) -> bool:
    """Production, routed (4-9) and global vlans are routed; kavlan-local (1-3) is not."""
    return vlan == DEFAULT or int(vlan) not in ref.LOCAL_VLANS


def route_for(site: ref.SiteSpec, vlan: str) -> list[str]:
    """The route a node's primary interface gets in `vlan`: the emulator's range (never a
    default route) via that network's gateway, the switch namespace."""
    gateway = ref.production_gateway(site) if vlan == DEFAULT else ref.vlan_gateway(site, int(vlan))
    return [ROUTED_RANGE, "via", gateway, "dev", "eth0"]


def etc_hosts_text(platform: ref.Platform) -> str:
    """Every node's names as Grid'5000's DNS gives them (there is no DNS server here): the FQDN
    and short name on the production address, `<node>-kavlan-N` and `<node>-eth1-kavlan-N` on
    the vlan addresses."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "# Grid'5000 emulator: node names (production and KaVLAN addresses)",
    ]
    globals_ = sorted(s.global_vlan for s in ref.SITES)
    for site in platform.sites.values():
        vlans = [*ref.LOCAL_VLANS, *ref.ROUTED_VLANS, *globals_]
        for node in platform.nodes_by_site[site.uid]:
            lines.append(f"{node.ip}\t{node.fqdn} {node.uid}")
            for vlan in vlans:
                for device in ("eth0", "eth1") if node.eth1 else ("eth0",):
                    name = ref.vlan_hostname(node, device, vlan)
                    lines.append(f"{ref.vlan_address(site, vlan, node, device)}\t{name} {name.split('.')[0]}")
    return "\n".join(lines) + "\n"


class Hosts:
    """The real hosts of running jobs' nodes. Jobs, deployments and KaVLAN call its hooks (`up`,
    `down`, `reinstall`, `move`); it reads them back and records what it did in their objects."""

    def __init__(
        self,
        platform: ref.Platform,
        store: Store,
        clock: Clock,
        jobs: Jobs,
        deployments: Deployments,
        kavlan: Kavlan,
        keys_of: Callable[[str], list[str]],
        run_dir: Optional[str],
    ):
        if os.geteuid() != 0:
            raise ValueError("real hosts need root (network and mount namespaces); use --no-hosts")
        self.platform = platform
        self.store = store
        self.clock = clock
        self.jobs = jobs
        self.deployments = deployments
        self.kavlan = kavlan  # where each interface is (vlan_of)
        self.keys_of = keys_of  # a user's registered public keys
        self.instance = store.get("meta", "instance") or secrets.token_hex(3)
        store.put("meta", "instance", self.instance)
        self.prefix = f"{PREFIX}{self.instance}-"
        self.switch = self.prefix + "sw"
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="tbemu-")
        self.lock = asyncio.Lock()
        self.limit = asyncio.Semaphore(8)
        self.up_nodes: dict[str, int] = {}  # fqdn → job uid
        self.tasks: set[asyncio.Task[None]] = set()
        self.etc_hosts = etc_hosts_text(platform)
        self.dhcp = Dhcp(self.switch, {site_bridge(s): s for s in platform.sites.values()}, self.run_dir)

    def namespace(self, node: Node) -> str:
        return self.prefix + node.uid

    def host_dir(self, node: Node) -> str:
        return os.path.join(self.run_dir, "hosts", node.uid)

    # ---- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        await netns.teardown(netns.list_namespaces(self.prefix), None)  # left by a crash
        await netns.add_namespaces([self.switch], None)
        lines = ["link set lo up"]
        for site in self.platform.sites.values():
            prod = ref.production_network(site)
            lines += [
                f"link add {site_bridge(site)} type bridge",
                f"addr add {ref.production_gateway(site)}/{prod.prefixlen} dev {site_bridge(site)}",
                f"link set {site_bridge(site)} up",
            ]
            for vlan in self.platform.vlan_ids(site.uid):
                net = ref.vlan_network(site, vlan)
                lines += [
                    f"link add {vlan_bridge(site, vlan)} type bridge",
                    f"addr add {ref.vlan_gateway(site, vlan)}/{net.prefixlen} dev {vlan_bridge(site, vlan)}",
                    f"link set {vlan_bridge(site, vlan)} up",
                ]
        lines += self.dhcp.switch_lines()
        await run(
            ["ip", "-n", self.switch, "-batch", "-"], input="\n".join(lines) + "\n", what="setting up the emulator's switch namespace"
        )
        # The switch is also the router between the production networks and the routed and
        # global vlans (it has no other interface, so nothing is forwarded out of the namespaces).
        await run(
            ["ip", "netns", "exec", self.switch, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
            what="enabling forwarding in the switch namespace",
        )
        await self.dhcp.start()
        for job in self.jobs.jobs.values():  # resume the hosts of running jobs
            if job["state"] in ("launching", "running"):
                self.up(job)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.dhcp.stop()
        async with self.lock:
            await netns.teardown(netns.list_namespaces(self.prefix), None)
            self.up_nodes.clear()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:
            shutil.rmtree(os.path.join(self.run_dir, "hosts"), ignore_errors=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ---- hooks called by jobs, deployments and kavlan (synchronous; work happens in tasks) ----

    def up(self, job: dict[str, Any]) -> None:
        self._spawn(self._up(job))

    def down(self, job: dict[str, Any]) -> None:
        job["hosts_busy"] = True
        self._spawn(self._down(job))

    def reinstall(self, dep: dict[str, Any], fqdns: list[str]) -> None:
        self._spawn(self._reinstall(dep, fqdns))

    def move(self, moves: list[Move]) -> None:
        self._spawn(self._move(moves))

    # ---- work ------------------------------------------------------------------------------

    def _authorized(self, job: dict[str, Any], node: Node) -> list[str]:
        deployed = self.store.get("node", node.fqdn)
        if deployed and deployed.get("job") == job["uid"]:
            return deployed["keys"]
        return self.keys_of(job["user"])

    async def _up(self, job: dict[str, Any]) -> None:
        nodes = [self.platform.nodes[f] for f in (job.get("alloc") or {}).get("nodes", [])]
        try:
            async with self.lock:
                if job["state"] not in ("launching", "running"):
                    return
                started = time.monotonic()
                await self._build(job, nodes)
                log.info(
                    "job %s/%s: %d node(s) up and answering SSH in %.1f s", job["site"], job["uid"], len(nodes), time.monotonic() - started
                )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken node ends its job, as on the platform
            log.exception("bringing up the nodes of job %s failed", job["uid"])
            job["killed"] = True
            job.setdefault("events", []).append(
                {
                    "uid": len(job.get("events", [])) + 1,
                    "type": "SWITCH_INTO_ERROR_STATE",
                    "created_at": int(self.clock.now()),
                    "description": f"[emulator] node bring-up failed: {err}",
                }
            )
        job["hosts_ready"] = True
        self.jobs.save(job)

    async def _build(self, job: dict[str, Any], nodes: list[Node]) -> None:
        nodes = [n for n in nodes if n.fqdn not in self.up_nodes]
        if not nodes:
            return
        await netns.add_namespaces([self.namespace(n) for n in nodes], None)
        links = []
        for node in nodes:
            site = self.platform.sites[node.site]
            prefixlen = ref.production_network(site).prefixlen
            for device in ("eth0", "eth1") if node.eth1 else ("eth0",):
                address = f"{node.ip}/{prefixlen}" if device == "eth0" else None
                links.append(
                    netns.Link(self.namespace(node), device, port(node, site, device), site_bridge(site), mac(site, node, device), address)
                )
        await netns.add_links(self.switch, links, None, self.limit)
        await asyncio.gather(*(self._arp_sysctls(n) for n in nodes))
        for node in nodes:
            self.up_nodes[node.fqdn] = job["uid"]
        await asyncio.gather(*(self._install(job, n, fresh=False) for n in nodes))
        await self._apply_vlans(nodes)
        await self._wait_ready(nodes)

    async def _arp_sysctls(self, node: Node) -> None:
        """Answer ARP only on the interface holding the address: eth0 and eth1 share the site
        bridge while eth1 is in DEFAULT, and Linux's default (any interface answers) lets the
        switch learn eth1's MAC for the node's production IP, which breaks SSH as soon as eth1
        moves to a vlan (seen: banner timeouts right after a KaVLAN move)."""
        async with self.limit:
            await run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.namespace(node),
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                ],
                what=f"setting the ARP behaviour of {node.uid}",
            )
            site = self.platform.sites[node.site]
            await run(
                ["ip", "-n", self.namespace(node), "route", "replace", *route_for(site, DEFAULT)], what=f"adding the route of {node.uid}"
            )

    async def _install(self, job: dict[str, Any], node: Node, fresh: bool) -> None:
        """Prepare the node's files and start its sshd; `fresh` = a reinstall (new host key,
        wiped home and temp)."""
        hdir = self.host_dir(node)
        marker = os.path.join(hdir, "job")
        same_job = os.path.exists(marker) and open(marker).read().strip() == str(job["uid"])
        if fresh or not same_job:
            await asyncio.to_thread(shutil.rmtree, hdir, True)
        await asyncio.to_thread(os.makedirs, hdir, 0o700, True)
        await asyncio.to_thread(sshd.prepare_host_dir, hdir, "\n".join(self._authorized(job, node)))
        await asyncio.to_thread(sshd.write_etc_hosts, hdir, self.etc_hosts)
        key_path = os.path.join(hdir, "etc-ssh", keys.HOST_KEY)
        if not os.path.exists(key_path):
            await keys.generate(key_path, f"root@{node.uid}", None)
        await asyncio.to_thread(write_private, marker, str(job["uid"]))
        await sshd.start(self.namespace(node), hdir, node.uid, None)

    async def _wait_ready(self, nodes: list[Node]) -> None:
        async def ready(address: str) -> None:
            return None

        missing = await wait_for_ssh(self.switch, [self.primary_address(n) for n in nodes], READY_TIMEOUT, None, ready)
        if missing:
            raise RuntimeError(f"sshd did not answer on {', '.join(missing)}")

    def primary_address(self, node: Node) -> str:
        """Where the node's eth0 answers now: its production IP, or its address in the vlan
        KaVLAN (or kadeploy's `vlan`) put it in."""
        vlan = self.kavlan.vlan_of(node.site, node.fqdn)
        if vlan == DEFAULT:
            return node.ip
        return ref.vlan_address(self.platform.sites[node.site], int(vlan), node, "eth0")

    async def _down(self, job: dict[str, Any]) -> None:
        try:
            async with self.lock:
                nodes = [self.platform.nodes[f] for f in (job.get("alloc") or {}).get("nodes", []) if self.up_nodes.get(f) == job["uid"]]
                await netns.teardown([self.namespace(n) for n in nodes], None)
                if nodes:
                    log.info("job %s/%s: %d node(s) torn down", job["site"], job["uid"], len(nodes))
                for node in nodes:
                    self.up_nodes.pop(node.fqdn, None)
                    self.store.delete("node", node.fqdn)
                    await asyncio.to_thread(shutil.rmtree, self.host_dir(node), True)
        except Exception:  # noqa: BLE001
            log.exception("tearing down the nodes of job %s failed", job["uid"])
        finally:
            job["hosts_busy"] = False
            self.jobs.save(job)

    async def _reinstall(self, dep: dict[str, Any], fqdns: list[str]) -> None:
        try:
            async with self.lock:
                key = dep.get("key_text")
                for fqdn in fqdns:
                    node = self.platform.nodes[fqdn]
                    job = self.jobs.jobs.get((node.site, self.up_nodes.get(fqdn, -1)))
                    if job is None:
                        continue
                    new_keys = [k for k in key.splitlines() if k.strip()] if key else self.keys_of(dep["user_uid"])
                    self.store.put("node", fqdn, {"job": job["uid"], "keys": new_keys})
                    # a reboot: every process of the node goes, then a fresh system starts
                    ns_id = netns.namespace_id(self.namespace(node))
                    if ns_id is not None:
                        for pid in await asyncio.to_thread(netns.pids_in, [ns_id]):
                            try:
                                os.kill(pid, 9)
                            except ProcessLookupError:
                                pass
                    await self._install(job, node, fresh=True)
                await self._wait_ready([self.platform.nodes[f] for f in fqdns if f in self.up_nodes])
        except Exception:  # noqa: BLE001
            log.exception("reinstalling nodes for deployment %s failed", dep["uid"])
        finally:
            dep["hosts_busy"] = False
            self.deployments.save(dep)

    async def _apply_vlans(self, nodes: list[Node]) -> None:
        moves = []
        for node in nodes:
            for device, address in (("eth0", node.fqdn), ("eth1", node.eth1_fqdn)):
                if device == "eth1" and not node.eth1:
                    continue
                vlan = self.kavlan.vlan_of(node.site, address)
                if vlan != DEFAULT:
                    moves.append((node, device, vlan))
        await self._replug(moves)

    async def _move(self, moves: list[Move]) -> None:
        try:
            async with self.lock:
                await self._replug([m for m in moves if m[0].fqdn in self.up_nodes])
        except Exception:  # noqa: BLE001
            log.exception("moving interfaces between vlans failed")

    async def _replug(self, moves: list[Move]) -> None:
        """Put each interface on its vlan's bridge with its vlan address (DEFAULT: the site
        bridge; eth0 gets its production address back, eth1 none)."""
        if not moves:
            return
        switch_lines = []
        for node, device, vlan in moves:
            site = self.platform.sites[node.site]
            bridge = site_bridge(site) if vlan == DEFAULT else vlan_bridge(site, int(vlan))
            switch_lines.append(f"link set {port(node, site, device)} master {bridge}")
            lines = [f"addr flush dev {device}"]
            if vlan != DEFAULT:
                net = ref.vlan_network(site, int(vlan))
                lines.append(f"addr add {ref.vlan_address(site, int(vlan), node, device)}/{net.prefixlen} dev {device}")
            elif device == "eth0":
                lines.append(f"addr add {node.ip}/{ref.production_network(site).prefixlen} dev eth0")
            if device == "eth0" and routed(vlan):
                lines.append("route replace " + " ".join(route_for(site, vlan)))
            await run(
                ["ip", "-n", self.namespace(node), "-batch", "-"],
                input="\n".join(lines) + "\n",
                what=f"readdressing {device} of {node.uid}",
            )
        await run(["ip", "-n", self.switch, "-batch", "-"], input="\n".join(switch_lines) + "\n", what="moving switch ports between vlans")

    # ---- description -----------------------------------------------------------------------

    def ssh_info(self) -> dict[str, Any]:
        return {
            "proxyCommand": f"ip netns exec {self.switch} nc %h %p",
            "user": "root",
            "hosts": True,
            "switchNamespace": self.switch,
            "namespacePrefix": self.prefix,
        }

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for fqdn, uid in sorted(self.up_nodes.items()):
            node = self.platform.nodes[fqdn]
            out.append(
                {
                    "fqdn": fqdn,
                    "ip": node.ip,
                    "address": self.primary_address(node),
                    "job": uid,
                    "namespace": self.namespace(node),
                    "sshdPid": sshd.read_pid(self.host_dir(node)),
                }
            )
        return out
