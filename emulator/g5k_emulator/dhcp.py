"""The sites' DHCP for subnet addresses: dnsmasq in the switch namespace, on every site bridge.

Grid'5000's DHCP knows every address of a site's g5ksubnet by the MAC VMonG5k derives from it
(`00:16:3e` + hex of the last three octets), reserved or not, and gives the subnet gateway as
router. Here each site bridge also carries that gateway address, so a VM bridged onto a node's
production NIC gets its subnet address and a route, and the switch (the clients' "gateway",
`ip netns exec <switch> nc %h %p`) reaches it directly. DHCP only: dnsmasq's DNS is off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
from typing import Optional

from . import reference as ref

log = logging.getLogger(__name__)

DNSMASQ = "dnsmasq"
LEASE_SECONDS = 12 * 3600


def subnet_mac(address: str) -> str:
    """The MAC Grid'5000's DHCP maps to a subnet address (VMonG5k's scheme)."""
    return "00:16:3e" + "".join(f":{b:02x}" for b in ipaddress.IPv4Address(address).packed[1:])


def subnet_gateway(site: ref.SiteSpec) -> str:
    """The site's subnet gateway (what the reference API publishes for g5ksubnet)."""
    net = ref.g5ksubnet(site)
    return str(net.network_address + net.num_addresses - 2)


def hosts_lines(sites: list[ref.SiteSpec]) -> list[str]:
    """dnsmasq `dhcp-hostsfile` lines: every subnet address but the gateway, by its MAC."""
    out = []
    for site in sites:
        gateway = subnet_gateway(site)
        for ip in ref.g5ksubnet(site).hosts():
            if str(ip) != gateway:
                out.append(f"{subnet_mac(str(ip))},{ip}")
    return out


def available() -> bool:
    return shutil.which(DNSMASQ) is not None


class Dhcp:
    """One dnsmasq for all sites (it picks the range by the bridge a request came in on)."""

    def __init__(self, switch: str, bridges: dict[str, ref.SiteSpec], run_dir: str) -> None:
        self.switch = switch
        self.bridges = bridges  # site bridge → its site
        self.dir = os.path.join(run_dir, "dhcp")
        self.proc: Optional[asyncio.subprocess.Process] = None

    def switch_lines(self) -> list[str]:
        """`ip -batch` lines for the switch namespace: the subnet gateway on each site bridge."""
        return [f"addr add {subnet_gateway(site)}/{ref.g5ksubnet(site).prefixlen} dev {bridge}" for bridge, site in self.bridges.items()]

    async def start(self) -> None:
        if not available():
            log.warning("dnsmasq is missing (Debian package dnsmasq-base): subnet addresses get no DHCP")
            return
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        hostsfile = os.path.join(self.dir, "hosts")
        with open(hostsfile, "w") as f:
            f.write("\n".join(hosts_lines(list(self.bridges.values()))) + "\n")
        args = [
            "ip",
            "netns",
            "exec",
            self.switch,
            DNSMASQ,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",  # no DNS
            "--bind-interfaces",
            "--user=root",
            "--group=root",
            f"--pid-file={os.path.join(self.dir, 'dnsmasq.pid')}",
            f"--dhcp-leasefile={os.path.join(self.dir, 'leases')}",
            f"--dhcp-hostsfile={hostsfile}",
            f"--log-facility={os.path.join(self.dir, 'log')}",
            "--log-dhcp",
        ]
        for bridge, site in self.bridges.items():
            net = ref.g5ksubnet(site)
            args += [f"--interface={bridge}", f"--dhcp-range={net.network_address},static,{net.netmask},{LEASE_SECONDS}"]
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        try:  # dnsmasq exits at once on a bad option or a busy port; give it that chance
            await asyncio.wait_for(self.proc.wait(), 0.5)
        except asyncio.TimeoutError:
            log.info("DHCP for subnet addresses on %d site bridge(s)", len(self.bridges))
            return
        err = (await self.proc.stderr.read()).decode(errors="replace").strip() if self.proc.stderr else ""
        self.proc = None
        raise RuntimeError(f"dnsmasq exited at start: {err}")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
