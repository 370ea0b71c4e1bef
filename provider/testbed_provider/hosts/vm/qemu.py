"""One QEMU VM as a testbed host: started, waited for, stopped.

A VM's NICs are taps on bridges of the switch namespace, so it is reached exactly like a
namespace host: `ip netns exec <switch> nc <address> 22` (the local testbed's ProxyCommand).
QEMU runs daemonized under `ip netns exec <switch>` and creates its taps there itself; they are
QEMU's own (not persistent), so they vanish with it, whichever way it ends. Being a process of the
switch namespace, a QEMU left behind is also stopped by a teardown of that namespace.

Per VM, in its run dir: `disk.qcow2`, a copy-on-write overlay on the image's base disk (backing
file, no copy), `serial.log` (the console: kernel, initramfs and tb-init lines), `qemu.pid`. The
VM is recorded by pid and process start time (`common.pids`), so `stop_vm` signals that very
QEMU and never a process that got its pid since.

The accelerator: KVM where a short probe boot succeeds, else TCG (`-accel tcg,tb-size=64`: QEMU
7.2's translation cache otherwise grows to 1 GiB per VM). The probe's answer is cached per
machine boot. PULUMI_TESTBED_VM_ACCEL=kvm|tcg skips the probe.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, Optional, Sequence

from ...common import deadlines, pids
from ...common.private_files import unlink_quietly, write_private
from .. import readiness
from ..commands import CommandError, run
from . import guest
from .image import VmImage, cache_root

QEMU = "qemu-system-x86_64"
OVERLAY = "disk.qcow2"
SERIAL_LOG = "serial.log"
PID_FILE = "qemu.pid"
STATE_FILE = "vm.json"
PROBE_TIMEOUT = 15.0  # a usable KVM reaches the initramfs in ~1 s (TCG ~7 s); a slower one is no gain over TCG
KERNEL_ARGS = "console=ttyS0 quiet panic=-1"


class VmError(Exception):
    """A VM could not be started or died; the message quotes the end of its serial console."""


@dataclass(frozen=True)
class VmNic:
    """One NIC: tap `tap` (a name unique in the switch namespace, ≤ 15 characters) on `bridge`,
    seen in the guest as `device` (default eth<i>) with `mac` and `address` (a.b.c.d/len)."""

    bridge: str
    tap: str
    mac: str
    address: str
    device: str = ""


@dataclass(frozen=True)
class Accel:
    """How QEMU runs guests here: "kvm" or "tcg", and why (the probe's finding)."""

    name: str
    reason: str

    def qemu_args(self) -> list[str]:
        if self.name == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,tb-size=64", "-cpu", "max"]


@dataclass
class VmHandle:
    """A started VM, as recorded (JSON-able: `to_state`/`from_state`, also written to run_dir)."""

    name: str
    switch: str
    run_dir: str
    address: str  # the first NIC's address, without its length: where SSH is reached
    pid: int
    started: int  # process start time (clock ticks since boot), with pid its identity
    accel: str
    kernel_version: str
    taps: list[str] = field(default_factory=list)

    @property
    def overlay(self) -> str:
        return os.path.join(self.run_dir, OVERLAY)

    @property
    def serial_log(self) -> str:
        return os.path.join(self.run_dir, SERIAL_LOG)

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "VmHandle":
        return cls(**{k: state[k] for k in cls.__dataclass_fields__ if k in state})


# ---- the accelerator ---------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _accel_cache() -> str:
    return os.path.join(os.path.dirname(cache_root()), "vm-accel.json")


async def accel(image: VmImage, cancelled: Optional[asyncio.Event] = None) -> Accel:
    """KVM if /dev/kvm boots the image's kernel to its initramfs within PROBE_TIMEOUT, else TCG.

    On Grid'5000 or Chameleon nodes KVM works; on a machine whose /dev/kvm is a PVM hypervisor
    QEMU aborts at once (or crawls) and TCG is the answer. Cached per machine boot."""
    forced = os.environ.get("PULUMI_TESTBED_VM_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return Accel(forced, "PULUMI_TESTBED_VM_ACCEL")
    boot = _boot_id()
    try:
        with open(_accel_cache()) as f:
            cached = json.load(f)
        if cached.get("boot_id") == boot and cached.get("name") in ("kvm", "tcg"):
            return Accel(cached["name"], cached["reason"] + " (probed earlier this boot)")
    except (OSError, ValueError, AttributeError):
        pass
    found = await _probe(image, cancelled)
    os.makedirs(os.path.dirname(_accel_cache()), exist_ok=True)
    write_private(_accel_cache(), json.dumps({"boot_id": boot, "name": found.name, "reason": found.reason}), 0o644)
    return found


async def _probe(image: VmImage, cancelled: Optional[asyncio.Event]) -> Accel:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "no usable /dev/kvm")
    with tempfile.TemporaryDirectory(prefix="tb-kvm-probe-") as tmp:
        log = os.path.join(tmp, "serial.log")
        argv = [
            QEMU,
            *Accel("kvm", "").qemu_args(),
            "-m",
            "256",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            image.kernel,
            "-initrd",
            image.initrd,
            "-append",
            f"{KERNEL_ARGS} tb_probe=1",
            "-serial",
            f"file:{_qarg(log)}",
        ]
        try:
            result = await run(argv, what="probing KVM", cancelled=cancelled, timeout=PROBE_TIMEOUT, check=False)
        except CommandError:
            return Accel("tcg", f"a KVM guest did not boot within {PROBE_TIMEOUT:g} s")
        console = _read_tail(log, 4000)
        if result.returncode == 0 and guest.PROBE_OK in console:
            return Accel("kvm", "a KVM probe guest booted")
        why = (result.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return Accel("tcg", f"KVM cannot run this guest ({why})")


# ---- one VM ------------------------------------------------------------------------------------


def _qarg(value: str) -> str:
    """A value inside a QEMU option list (`a=b,c=d`): commas are doubled."""
    return value.replace(",", ",,")


def _read_tail(path: str, chars: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def serial_tail(vm: VmHandle, chars: int = 1500) -> str:
    """The end of the VM's serial console (its kernel's and tb-init's messages)."""
    return _read_tail(vm.serial_log, chars).strip()


def is_qemu(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().startswith("qemu-system")
    except OSError:
        return False


def running(vm: VmHandle) -> bool:
    """Whether the VM's very QEMU (same pid, same start time) still runs."""
    return pids.same_process(vm.pid, vm.started) and is_qemu(vm.pid)


async def start_vm(
    name: str,
    switch: str,
    nics: Sequence[VmNic],
    image: VmImage,
    *,
    host_key: str,
    authorized_key: str,
    run_dir: str,
    cores: int = 1,
    memory_mb: int = 512,
    accelerator: Optional[Accel] = None,
    etc_hosts: Optional[str] = None,
    cancelled: Optional[asyncio.Event] = None,
) -> VmHandle:
    """Start VM `name` (its hostname too) with `nics` on bridges of namespace `switch`; returns
        once QEMU has daemonized and its taps are on their bridges (then `wait_ssh`).

        `host_key`: path of the VM's ed25519 private host key (0600; the caller pins its public half
        in known_hosts). `authorized_key`: root's only authorized public key. `run_dir`: this VM's own
        directory (created 0700 if missing). `accelerator`: default `accel(image)`. The first NIC's
        address is the one SSH is reached on. `etc_hosts`: a file the guest copies to /etc/hosts at
    boot (the names of the other hosts; later changes are the caller's to push). Raises ValueError on bad input, CommandError or VmError
        when QEMU does not start (nothing is left running then)."""
    if not nics:
        raise ValueError(f"VM {name} needs at least one NIC")
    if cores < 1 or memory_mb < 128:
        raise ValueError(f"VM {name}: cores must be ≥ 1 and memory ≥ 128 MB")
    gnics = [guest.GuestNic(n.device or f"eth{i}", n.mac.lower(), n.address) for i, n in enumerate(nics)]
    words = guest.kernel_words(name, gnics, authorized_key)
    for n in nics:
        if not (0 < len(n.tap) <= 15) or "/" in n.tap or " " in n.tap:
            raise ValueError(f"VM {name}: tap name {n.tap!r} is not a valid interface name")
    if not os.path.isfile(host_key):
        raise ValueError(f"VM {name}: no host key file {host_key}")
    run_dir = os.path.abspath(run_dir)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    acc = accelerator or await accel(image, cancelled)
    overlay = os.path.join(run_dir, OVERLAY)
    pid_file = os.path.join(run_dir, PID_FILE)
    for stale in (overlay, pid_file, os.path.join(run_dir, SERIAL_LOG)):
        unlink_quietly(stale)
    await run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", image.disk, "-F", "qcow2", overlay],
        what=f"creating VM {name}'s disk overlay",
        cancelled=cancelled,
    )
    argv = ["ip", "netns", "exec", switch, QEMU, "-name", name, *acc.qemu_args()]
    argv += ["-smp", str(cores), "-m", str(memory_mb), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
    argv += ["-kernel", image.kernel, "-initrd", image.initrd, "-append", " ".join([KERNEL_ARGS, *words])]
    argv += ["-drive", f"file={_qarg(overlay)},if=virtio,format=qcow2"]
    for i, n in enumerate(nics):
        argv += ["-netdev", f"tap,id=n{i},ifname={n.tap},script=no,downscript=no"]
        argv += ["-device", f"virtio-net-pci,netdev=n{i},mac={n.mac.lower()}"]
    argv += ["-fw_cfg", f"name={guest.HOST_KEY_FW_CFG},file={_qarg(os.path.abspath(host_key))}"]
    if etc_hosts is not None:
        argv += ["-fw_cfg", f"name={guest.ETC_HOSTS_FW_CFG},file={_qarg(os.path.abspath(etc_hosts))}"]
    argv += ["-serial", f"file:{_qarg(os.path.join(run_dir, SERIAL_LOG))}", "-daemonize", "-pidfile", pid_file]
    try:
        await run(argv, what=f"starting VM {name}", cancelled=cancelled, timeout=60)
    except BaseException:
        # Cancelled or timed out once QEMU had daemonized (pid file written): stop it too.
        pid = _read_pid(pid_file)
        if pid is not None and is_qemu(pid) and pids.running(pid):
            os.kill(pid, signal.SIGKILL)
        unlink_quietly(overlay)
        raise
    pid = _read_pid(pid_file)
    started = pids.start_time(pid)
    if pid is None or started is None or not is_qemu(pid):
        unlink_quietly(overlay)
        raise VmError(
            f"VM {name}: QEMU daemonized but is not running (pid file {pid_file}): {_read_tail(os.path.join(run_dir, SERIAL_LOG), 600)}"
        )
    vm = VmHandle(
        name, switch, run_dir, str(gnics[0].address).split("/")[0], pid, started, acc.name, image.kernel_version, [n.tap for n in nics]
    )
    write_private(os.path.join(run_dir, STATE_FILE), json.dumps(vm.to_state(), indent=2) + "\n")
    try:
        await run(
            ["ip", "-n", switch, "-batch", "-"],
            input="".join(f"link set {n.tap} master {n.bridge} up\n" for n in nics),
            what=f"attaching VM {name}'s taps to their bridges",
            cancelled=cancelled,
        )
    except BaseException:
        await stop_vm(vm)
        raise
    return vm


def _read_pid(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def load_vm(run_dir: str) -> Optional[VmHandle]:
    """The VM recorded in `run_dir` by start_vm (for a teardown driven by the run dir alone)."""
    try:
        with open(os.path.join(run_dir, STATE_FILE)) as f:
            return VmHandle.from_state(json.load(f))
    except (OSError, ValueError, TypeError):
        return None


async def wait_ssh(
    vms: Sequence[VmHandle],
    timeout: float,
    cancelled: Optional[asyncio.Event] = None,
    on_ready: Optional[Callable[[VmHandle], Awaitable[None]]] = None,
) -> list[VmHandle]:
    """Wait until each VM's sshd sends its banner on its address, probed from its switch
    namespace (hosts.readiness); `on_ready(vm)` as each becomes ready. Returns the VMs not ready
    within `timeout`; raises VmError at once if a QEMU exits meanwhile (quoting its console)."""
    if not vms:
        return []
    by_key = {(vm.switch, vm.address): vm for vm in vms}
    ready: set[str] = set()
    groups: dict[str, list[str]] = {}
    for vm in vms:
        groups.setdefault(vm.switch, []).append(vm.address)

    def reporter(switch: str) -> Callable[[str], Awaitable[None]]:
        async def seen(address: str) -> None:
            vm = by_key[(switch, address)]
            ready.add(vm.name)
            if on_ready is not None:
                await on_ready(vm)

        return seen

    async def watch() -> None:
        while True:
            for vm in vms:
                if vm.name not in ready and not running(vm):
                    raise VmError(f"VM {vm.name}'s QEMU exited before its sshd answered; its console ends with:\n{serial_tail(vm)}")
            await asyncio.sleep(0.25)

    waits = asyncio.gather(*(readiness.wait_for_ssh(sw, addrs, timeout, cancelled, reporter(sw)) for sw, addrs in groups.items()))
    watcher = asyncio.ensure_future(watch())
    try:
        either: set[asyncio.Future[Any]] = {waits, watcher}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done():
            watcher.result()  # raises the VmError
        pending = [address for group in waits.result() for address in group]
    finally:
        for task in (waits, watcher):
            task.cancel()
        await asyncio.gather(waits, watcher, return_exceptions=True)
    return [vm for vm in vms if vm.address in pending and vm.name not in ready]


async def stop_vm(vm: VmHandle, grace: float = 5.0) -> None:
    """Stop the VM's QEMU (TERM, KILL after `grace`) if it is still that very process, then
    remove its overlay and pid file. Idempotent. Its taps are QEMU's own and vanish with it (a tap
    of the same name seen later belongs to someone else: it is never deleted here)."""
    if running(vm):
        os.kill(vm.pid, signal.SIGTERM)
        deadline = deadlines.after(grace)
        while running(vm) and not deadlines.passed(deadline):
            await asyncio.sleep(0.05)
        for _ in range(100):
            if not running(vm):
                break
            os.kill(vm.pid, signal.SIGKILL)
            await asyncio.sleep(0.05)
        if running(vm):
            raise VmError(f"VM {vm.name}'s QEMU (pid {vm.pid}) survived SIGKILL")
    for path in (vm.overlay, os.path.join(vm.run_dir, PID_FILE)):
        unlink_quietly(path)
