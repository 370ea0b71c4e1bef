"""The sites' DHCP for subnet addresses: a client with a VMonG5k MAC on a site bridge gets the
subnet address that MAC encodes, and the subnet gateway as router (what VMs on nodes rely on)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest

from g5k_emulator import reference as ref
from g5k_emulator.dhcp import hosts_lines, subnet_gateway, subnet_mac
from g5k_emulator.hosts import site_bridge

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "dnsmasq", "busybox", "sshd")),
    reason="needs root, iproute2, dnsmasq (dnsmasq-base), busybox and openssh",
)


def test_every_subnet_address_but_the_gateway_has_its_mac():
    site = ref.build_platform().sites["nancy"]
    lines = hosts_lines([site])
    net = ref.g5ksubnet(site)
    assert len(lines) == net.num_addresses - 3  # not the network, broadcast or gateway address
    first = str(net.network_address + 1)
    assert lines[0] == f"{subnet_mac(first)},{first}"
    assert all(subnet_gateway(site) not in line for line in lines)


def test_a_subnet_mac_gets_its_address_and_the_gateway(start_emulator, tmp_path):
    emu = start_emulator(hosts=True, users=["alice:x"])
    switch = emu.control("GET", "ssh")["switchNamespace"]
    site = ref.build_platform().sites["nancy"]
    address = str(ref.g5ksubnet(site).network_address + 300)  # in the site's second /22
    client = f"tbemu-dhcptest-{secrets.token_hex(2)}"
    script = tmp_path / "udhcpc.sh"
    script.write_text('#!/bin/sh\n[ "$1" = bound ] && echo "lease $ip/$mask router $router"\nexit 0\n')
    script.chmod(0o755)
    subprocess.run(["ip", "netns", "add", client], check=True)
    try:
        subprocess.run(["ip", "-n", client, "link", "add", "eth0", "type", "veth", "peer", "name", "dhcpt0", "netns", switch], check=True)
        subprocess.run(["ip", "-n", client, "link", "set", "eth0", "address", subnet_mac(address), "up"], check=True)
        subprocess.run(["ip", "-n", switch, "link", "set", "dhcpt0", "master", site_bridge(site), "up"], check=True)
        got = subprocess.run(
            ["ip", "netns", "exec", client, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "2", "-s", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"lease {address}/{ref.g5ksubnet(site).prefixlen} router {subnet_gateway(site)}" in got.stdout, got.stdout + got.stderr
    finally:
        subprocess.run(["ip", "netns", "del", client], check=False)
    # the emulator's clean stop stops dnsmasq with the switch namespace
    assert emu.stop() == 0
    assert subprocess.run(["ip", "netns", "pids", switch], capture_output=True, text=True).stdout.strip() == ""
