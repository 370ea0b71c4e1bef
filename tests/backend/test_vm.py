"""QEMU VMs as testbed hosts (hosts.vm): the real image, real QEMU, real namespaces; no mocks.

The image is built by the first test that needs it (the machine's cache, ~1 min cold here) and
reused afterwards; one test builds another image from scratch in a temporary cache, with two
builders at once, to see the cold path and the lock. VMs run on a bridge in a switch namespace
named `tb-vmtest-<hex>-sw` (removed afterwards, with any QEMU still inside it).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys

import pytest

from testbed_provider.hosts import keys, netns
from testbed_provider.hosts.vm import image as vm_image
from testbed_provider.hosts.vm import qemu
from testbed_provider.testbeds.local.client_config import known_hosts_text, ssh_config_text

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("qemu-system-x86_64", "qemu-img", "mmdebstrap", "cpio", "depmod"))
    or not os.path.exists("/bin/busybox"),
    reason="VMs need QEMU, mmdebstrap, busybox-static, cpio, kmod (`make setup`)",
)

SSH_READY = 600.0  # seconds: generous, a busy 2-core CI machine runs the VMs under TCG
NET = "198.18.0"
PROVIDER = os.path.join(os.path.dirname(__file__), "..", "..", "provider")


@pytest.fixture(scope="module")
def image() -> vm_image.VmImage:
    lines: list[str] = []

    async def progress(message: str) -> None:
        lines.append(message)
        print(message, flush=True)

    built = asyncio.run(vm_image.ensure_image(progress))
    if lines:  # built now: every stage was reported
        assert any("[6/6]" in line for line in lines) and any("vm image: built" in line for line in lines), lines
    return built


@pytest.fixture
def switch():
    """A switch namespace with br0 (NET.254/24), removed with whatever runs inside it."""
    name = f"tb-vmtest-{secrets.token_hex(3)}-sw"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "-batch", "-"],
            input=f"link set lo up\nlink add br0 type bridge\naddr add {NET}.254/24 dev br0\nlink set br0 up\n",
            text=True,
            check=True,
        )
        yield name
    finally:
        asyncio.run(netns.teardown([name], None))


class Client:
    """The controller side, as the local testbed writes it: key, known_hosts, ssh_config."""

    def __init__(self, run_dir: str, switch: str):
        self.run_dir, self.switch = run_dir, switch
        asyncio.run(keys.generate(os.path.join(run_dir, "id"), "vmtest-client", None))
        self.hosts: list[tuple[str, str, str]] = []

    def host_key(self, name: str) -> str:
        path = os.path.join(self.run_dir, f"{name}.hostkey")
        asyncio.run(keys.generate(path, name, None))
        return path

    def pin(self, name: str, address: str, host_key: str) -> None:
        self.hosts.append((name, address, keys.read_public(host_key + ".pub")))
        self.write_known_hosts(self.hosts)
        with open(os.path.join(self.run_dir, "ssh_config"), "w") as f:
            f.write(ssh_config_text(self.run_dir, self.switch, [(n, a) for n, a, _ in self.hosts]))

    def write_known_hosts(self, hosts: list[tuple[str, str, str]]) -> None:
        with open(os.path.join(self.run_dir, "known_hosts"), "w") as f:
            f.write(known_hosts_text(hosts))

    @property
    def public_key(self) -> str:
        return keys.read_public(os.path.join(self.run_dir, "id.pub"))

    def ssh(self, host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ssh", "-F", os.path.join(self.run_dir, "ssh_config"), "-o", "ConnectTimeout=120", host, command],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check:
            assert done.returncode == 0, f"ssh {host} {command!r}: {done.returncode}: {done.stderr}"
        return done


def start(client: Client, image: vm_image.VmImage, name: str, slot: int) -> qemu.VmHandle:
    host_key = client.host_key(name)
    address = f"{NET}.{slot}"
    client.pin(name, address, host_key)
    mac = f"02:74:c6:12:00:{slot:02x}"
    return asyncio.run(
        qemu.start_vm(
            name,
            client.switch,
            [qemu.VmNic("br0", f"tap-{name}", mac, f"{address}/24")],
            image,
            host_key=host_key,
            authorized_key=client.public_key,
            run_dir=os.path.join(client.run_dir, name),
        )
    )


def wait_ready(vms: list[qemu.VmHandle]) -> None:
    left = asyncio.run(qemu.wait_ssh(vms, SSH_READY))
    assert not left, f"not SSH-ready: {[(vm.name, qemu.serial_tail(vm)) for vm in left]}"


def assert_gone(vm: qemu.VmHandle) -> None:
    assert not qemu.running(vm)
    assert not os.path.exists(vm.overlay)
    for tap in vm.taps:
        shown = subprocess.run(["ip", "-n", vm.switch, "link", "show", tap], capture_output=True, text=True)
        assert shown.returncode != 0, f"tap {tap} still exists: {shown.stdout}"


def stat_of(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def test_image_is_cached(image: vm_image.VmImage) -> None:
    """A second ensure_image reuses the built image: nothing reported, the same files untouched."""
    before = {p: stat_of(p) for p in (image.kernel, image.initrd, image.disk)}
    lines: list[str] = []

    async def progress(message: str) -> None:
        lines.append(message)

    again = asyncio.run(vm_image.ensure_image(progress))
    assert again == image and lines == []
    assert {p: stat_of(p) for p in (image.kernel, image.initrd, image.disk)} == before
    assert vm_image.cached_image() == image
    assert re.fullmatch(r"\d+\.\d+\.\d+-\d+-amd64", image.kernel_version)
    assert os.path.basename(image.directory) == image.key == vm_image.recipe_key()
    with open(image.kernel, "rb") as f:
        assert f.read(4) == b"\x7fELF"  # uncompressed


def test_cold_build_by_two_builders_at_once(tmp_path) -> None:
    """From an empty cache, two builders started together build the image once: one reports the
    build's stages, the other waits for it; both answer the same directory; nothing is left over."""
    env = dict(os.environ, PULUMI_TESTBED_CACHE=str(tmp_path / "cache"), PYTHONPATH=os.path.abspath(PROVIDER))
    argv = [sys.executable, "-m", "testbed_provider.hosts.vm.image"]
    try:
        builders = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [b.communicate(timeout=1800) for b in builders]
        assert [b.returncode for b in builders] == [0, 0], outputs
        directories = {out.strip() for out, _ in outputs}
        assert len(directories) == 1
        directory = directories.pop()
        errs = "".join(err for _, err in outputs)
        assert errs.count("vm image: built") == 1, errs
        assert "[3/6] building a bookworm minbase root file system" in errs
        assert sorted(os.listdir(os.path.dirname(directory))) == sorted(
            [os.path.basename(directory), f".{os.path.basename(directory)}.lock"]
        )
        assert os.path.isfile(os.path.join(directory, vm_image.DISK))
    finally:
        vm_image.remove_tree(str(tmp_path / "cache"))  # ~0.5 GB: not kept with pytest's last temp dirs


def test_vm_boots_ssh_and_netem(image: vm_image.VmImage, switch: str, tmp_path) -> None:
    client = Client(str(tmp_path), switch)
    vm = start(client, image, "vm1", 1)
    try:
        assert qemu.running(vm) and os.path.exists(vm.overlay) and vm.accel in ("kvm", "tcg")
        info = subprocess.run(["qemu-img", "info", "-U", vm.overlay], capture_output=True, text=True, check=True).stdout
        assert f"backing file: {image.disk}" in info
        wait_ready([vm])
        out = client.ssh("vm1", "uname -r; hostname; ip -4 -o addr show dev eth0").stdout.split("\n")
        assert out[0] == image.kernel_version
        assert out[1] == "vm1"
        assert f"inet {NET}.1/24" in out[2]
        # The host key is the pinned one: another key in known_hosts is refused.
        other = client.host_key("other")
        client.write_known_hosts([("vm1", f"{NET}.1", keys.read_public(other + ".pub"))])
        refused = client.ssh("vm1", "true", check=False)
        assert refused.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
        client.write_known_hosts(client.hosts)
        client.ssh("vm1", "tc qdisc add dev eth0 root netem delay 50ms && tc qdisc show dev eth0")
        ping = subprocess.run(["ip", "netns", "exec", switch, "ping", "-c", "5", "-i", "0.2", f"{NET}.1"], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        rtt_min = float(re.search(r"= ([\d.]+)/", ping.stdout).group(1))  # type: ignore[union-attr]
        assert rtt_min >= 50.0, ping.stdout
    finally:
        asyncio.run(qemu.stop_vm(vm))
    assert_gone(vm)
    asyncio.run(qemu.stop_vm(vm))  # idempotent


def test_two_vms_on_one_bridge(image: vm_image.VmImage, switch: str, tmp_path) -> None:
    client = Client(str(tmp_path), switch)
    vms = []
    try:
        vms.append(start(client, image, "vm1", 1))
        vms.append(start(client, image, "vm2", 2))
        wait_ready(vms)
        assert client.ssh("vm2", "hostname").stdout.strip() == "vm2"
        ping = client.ssh("vm1", f"ping -c 3 -i 0.3 -W 5 {NET}.2").stdout
        assert " 0% packet loss" in ping, ping
    finally:
        for vm in vms:
            asyncio.run(qemu.stop_vm(vm))
    for vm in vms:
        assert_gone(vm)


def test_a_vm_that_cannot_boot_is_reported(image: vm_image.VmImage, switch: str, tmp_path) -> None:
    """QEMU exiting before SSH is ready is an error quoting the console, not a long timeout."""
    client = Client(str(tmp_path), switch)
    broken = vm_image.VmImage(**{**image.__dict__, "initrd": str(tmp_path / "empty.cpio")})
    open(broken.initrd, "wb").close()
    vm = start(client, broken, "vm9", 9)
    try:
        with pytest.raises(qemu.VmError, match="vm9's QEMU exited"):
            asyncio.run(qemu.wait_ssh([vm], SSH_READY))
    finally:
        asyncio.run(qemu.stop_vm(vm))
    assert_gone(vm)
