"""A VM on an emulated Grid'5000 node, by the remote VM commands (hosts/vm/remote.py): the node
bridges its production NIC, QEMU boots the project's image there (TCG), the site's DHCP gives
the VM the subnet address its MAC encodes, and SSH reaches it through the emulator's gateway.
Emulator teardown leaves no QEMU. (The Reservation path: test_e2e_vms.py.)"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from g5k_emulator.testing import EmulatorProcess, grid5000_client
from testbed_provider.hosts.vm import remote
from testbed_provider.hosts.vm.image import ensure_image
from testbed_provider.testbeds.g5k.vms import mac_for, subnet_addresses

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0
    or any(shutil.which(t) is None for t in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "cpio", "depmod", "dnsmasq", "sshd")),
    reason="needs root, QEMU, mmdebstrap (the VM image), dnsmasq and openssh",
)


def test_a_vm_boots_on_an_emulated_node_with_its_subnet_address(tmp_path):
    image = asyncio.run(ensure_image(print))
    key, host_key = tmp_path / "user", tmp_path / "hostkey"
    for k in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    with EmulatorProcess(tmp_path / "emu", hosts=True, users=[f"alice:x:{key}.pub"]) as emu:
        proxy = emu.control("GET", "ssh")["proxyCommand"]
        opts = ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"]
        opts += ["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3", "-o", f"ProxyCommand={proxy}"]

        def ssh(host: str, command: str) -> subprocess.CompletedProcess:
            return subprocess.run(["ssh", *opts, f"root@{host}", command], capture_output=True, text=True, timeout=120)

        site = grid5000_client(emu).sites["nancy"]
        job = site.jobs.create({"command": "sleep 3600", "resources": "nodes=1+slash_22=1,walltime=1:00:00"})
        emu.wait_for(lambda: job.refresh() or job.state == "running", timeout=60)
        subnet = job.resources_by_type["subnets"][0]
        short = job.assigned_nodes[0].split(".")[0]
        node = site.clusters[short.split("-")[0]].nodes[short].network_adapters[0]["ip"]
        emu.wait_for(lambda: ssh(node, "true").returncode == 0, timeout=60)

        run_dir, image_dir = "/tmp/tb-vms/vm-1", "/tmp/tb-vms/image"
        assert ssh(node, f"mkdir -p {run_dir} {image_dir}").returncode == 0
        files = [os.path.join(image.directory, f) for f in ("vmlinux", "initrd.cpio", "rootfs.qcow2")]
        subprocess.run(["scp", "-q", *opts, *files, f"root@{node}:{image_dir}/"], check=True, timeout=300)
        subprocess.run(["scp", "-q", *opts, str(host_key), f"root@{node}:{run_dir}/hostkey"], check=True, timeout=60)
        got = ssh(node, remote.bridge_command())
        assert got.stdout.strip().endswith("ok"), got.stdout + got.stderr
        assert ssh(node, "true").returncode == 0  # the node's SSH survived the move onto br0

        address = next(subnet_addresses(subnet))
        command = remote.start_command(
            "vm-1",
            image_dir=image_dir,
            run_dir=run_dir,
            mac=mac_for(address),
            authorized_key=(tmp_path / "user.pub").read_text().strip(),
            tap="tbvm1",
        )
        started = time.monotonic()
        got = ssh(node, command)
        assert got.returncode == 0, got.stderr
        pid = int(got.stdout.split()[-1])
        deadline = time.monotonic() + 180
        while (reply := ssh(address, "uname -r; hostname; cat /sys/class/net/eth0/address")).returncode and time.monotonic() < deadline:
            time.sleep(1)
        assert reply.returncode == 0, ssh(node, f"tail -c 1500 {run_dir}/serial.log").stdout
        print(f"VM SSH-ready {time.monotonic() - started:.1f} s after QEMU started")
        assert reply.stdout.split() == [image.kernel_version, "vm-1", mac_for(address)]

        # stop: QEMU gone, overlay gone
        assert ssh(node, remote.stop_command(run_dir)).returncode == 0
        assert ssh(node, f"test -e /proc/{pid} || test -e {run_dir}; echo $?").stdout.strip() == "1"
    assert subprocess.run(["pgrep", "-f", "tb-vms/vm-1"], capture_output=True).returncode == 1
