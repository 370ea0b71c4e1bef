"""ACTIVE servers as real local hosts (needs root), built with the provider's host toolkit
(`testbed_provider.hosts`), as the Grid'5000 emulator's nodes are.

Layout (instance `os<5 hex>`, kept in the state file):
  - switch namespace `tbemu-<inst>-sw`: bridge `br0` carrying the shared network's gateway and
    the public network's, so both fixed and floating addresses are reachable from it;
  - server namespace `tbemu-<inst>-s<k>` while the server exists: `eth0` with its fixed address
    (and its floating one once associated), one sshd.
Who logs in: root, with the server's keypair (this machine has no sudo, so the images' `cc`
account is not emulated). Clients reach servers through `ip netns exec <switch> nc %h %p`.
A failed bring-up tears down what it made and puts the server in ERROR.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
from typing import Any, Optional

from testbed_provider.hosts import keys, netns, sshd
from testbed_provider.hosts.commands import run
from testbed_provider.hosts.readiness import wait_for_ssh

from . import inventory
from .cloud import Cloud

log = logging.getLogger("openstack_emulator.hosts")
PREFIX = "tbemu-"
READY_TIMEOUT = 60.0


class Hosts:
    def __init__(self, cloud: Cloud, run_dir: Optional[str] = None) -> None:
        if os.geteuid() != 0:
            raise ValueError("real hosts need root (network and mount namespaces); use --no-hosts")
        self.cloud = cloud
        self.instance = cloud.store.get("meta", "instance") or "os" + secrets.token_hex(3)[:5]
        cloud.store.put("meta", "instance", self.instance)
        self.prefix = f"{PREFIX}{self.instance}-"
        self.switch = self.prefix + "sw"
        self._own_run_dir = run_dir is None
        self.run_dir = run_dir or tempfile.mkdtemp(prefix="tbemu-os-")
        self.lock = asyncio.Lock()
        self.limit = asyncio.Semaphore(8)
        self.tasks: set[asyncio.Task[None]] = set()
        self.up: dict[str, str] = {}  # server id → namespace
        cloud.on_server_boot = lambda s: self._spawn(self._boot(s))
        cloud.on_server_gone = lambda s: self._spawn(self._gone(s))
        cloud.on_fip_change = lambda f: self._spawn(self._fips())

    @property
    def proxy_command(self) -> str:
        return f"ip netns exec {self.switch} nc %h %p"

    def namespace(self, server: dict[str, Any]) -> str:
        return f"{self.prefix}s{server['slot']}"

    async def start(self) -> None:
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        await netns.teardown(netns.list_namespaces(self.prefix), None)  # left by a crash
        await netns.add_namespaces([self.switch], None)
        shared = f"{inventory.SHARED_GATEWAY}/{inventory.SHARED_CIDR.prefixlen}"
        public = f"{inventory.PUBLIC_GATEWAY}/{inventory.PUBLIC_CIDR.prefixlen}"
        lines = [
            "link set lo up",
            "link add br0 type bridge",
            f"addr add {shared} dev br0",
            f"addr add {public} dev br0",
            "link set br0 up",
        ]
        await run(
            ["ip", "-n", self.switch, "-batch", "-"], input="\n".join(lines) + "\n", what="setting up the emulator's switch namespace"
        )
        for server in list(self.cloud.all("server").values()):  # resume the hosts of existing servers
            if not server.get("error") and server.get("host"):
                self._spawn(self._boot(server))

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        async with self.lock:
            await netns.teardown(netns.list_namespaces(self.prefix), None)
            self.up.clear()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _addresses(self, server: dict[str, Any]) -> tuple[str, list[str]]:
        """(eth0's MAC, its addresses with prefix): the fixed one, then any floating ones."""
        ports = [p for p in self.cloud.all("port").values() if p.get("device_id") == server["id"]]
        if not ports:
            raise RuntimeError("the server has no port")
        port = ports[0]
        out = [f"{port['fixed_ips'][0]['ip_address']}/{inventory.SHARED_CIDR.prefixlen}"]
        out += [f"{f['floating_ip_address']}/32" for f in self.cloud.all("fip").values() if f.get("port_id") == port["id"]]
        return port["mac_address"], out

    async def _boot(self, server: dict[str, Any]) -> None:
        ns = self.namespace(server)
        hdir = os.path.join(self.run_dir, "hosts", str(server["slot"]))
        try:
            async with self.lock:
                if server["id"] not in self.cloud.all("server"):
                    return
                await netns.teardown([ns], None)  # whatever an earlier server of that slot left
                await netns.add_namespaces([ns], None)
                mac, addresses = self._addresses(server)
                await netns.add_links(
                    self.switch, [netns.Link(ns, "eth0", f"v{server['slot']}", "br0", mac, addresses[0])], None, self.limit
                )
                for extra in addresses[1:]:
                    await run(["ip", "-n", ns, "addr", "add", extra, "dev", "eth0"], what="adding a floating address")
                await run(["ip", "-n", ns, "route", "replace", "default", "via", str(inventory.SHARED_GATEWAY)], what="adding the route")
                await asyncio.to_thread(shutil.rmtree, hdir, True)
                await asyncio.to_thread(os.makedirs, hdir, 0o700, True)
                kp = next((k for k in self.cloud.all("keypair").values() if k["name"] == server.get("key_name")), None)
                await asyncio.to_thread(sshd.prepare_host_dir, hdir, kp["public_key"] if kp else "")
                await keys.generate(os.path.join(hdir, "etc-ssh", keys.HOST_KEY), f"root@{server['name']}", None)
                await sshd.start(ns, hdir, server["name"], None)
                fixed = addresses[0].split("/")[0]

                async def ready(address: str) -> None:
                    return None

                missing = await wait_for_ssh(self.switch, [fixed], READY_TIMEOUT, None, ready)
                if missing:
                    raise RuntimeError(f"sshd did not answer on {fixed}: {sshd.log_tail(hdir)}")
                self.up[server["id"]] = ns
            log.info("server %s (%s) is a real host in %s", server["name"], server["id"], ns)
            self.cloud.save("server", {**self.cloud.all("server").get(server["id"], server), "booting": False})
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - a broken host is a server in ERROR, as a failed deploy is
            log.exception("bringing up server %s failed", server["id"])
            await netns.teardown([ns], None)
            current = self.cloud.all("server").get(server["id"])
            if current is not None:
                self.cloud.save("server", {**current, "booting": False, "error": f"[emulator] host bring-up failed: {err}"})

    async def _gone(self, server: dict[str, Any]) -> None:
        async with self.lock:
            await netns.teardown([self.namespace(server)], None)
            self.up.pop(server["id"], None)
            await asyncio.to_thread(shutil.rmtree, os.path.join(self.run_dir, "hosts", str(server["slot"])), True)

    async def _fips(self) -> None:
        """Every running host's floating addresses as Neutron now says."""
        async with self.lock:
            for sid, ns in list(self.up.items()):
                server = self.cloud.all("server").get(sid)
                if server is None:
                    continue
                _, addresses = self._addresses(server)
                await run(["ip", "-n", ns, "addr", "flush", "dev", "eth0", "scope", "global"], what="resetting addresses")
                for a in addresses:
                    await run(["ip", "-n", ns, "addr", "add", a, "dev", "eth0"], what="setting an address")
                await run(["ip", "-n", ns, "route", "replace", "default", "via", str(inventory.SHARED_GATEWAY)], what="adding the route")
