"""Shell commands that run the project's VMs on a remote node over SSH (VMs on Grid'5000).

The node needs QEMU and the image files (uploaded by the caller); each VM is bridged onto the
node's production NIC through `br0` (what Grid'5000's standard environment has), so it is on the
site network with the subnet address the site's DHCP gives its MAC. Moving the node's address
onto `br0` would cut an SSH session that ran it step by step, so `bridge_command` runs it as one
detached script. Pure string builders: the caller runs them with its own SSH settings.
"""

from __future__ import annotations

import shlex

from . import guest
from .image import DISK, INITRD, KERNEL
from .qemu import KERNEL_ARGS, OVERLAY, PID_FILE, QEMU, SERIAL_LOG, Accel

BRIDGE = "br0"
COMPLETE = ".complete"  # in an image directory once its upload finished


def bridge_command(device: str = "eth0", bridge: str = BRIDGE) -> str:
    """Create `bridge` carrying `device` (its MAC, addresses and routes move to the bridge);
    does nothing when the bridge exists. Prints `ok` once done."""
    script = (
        f"set -e; if [ -e /sys/class/net/{bridge} ]; then echo ok; exit 0; fi; "
        f"a=$(ip -4 -o addr show dev {device} | awk '{{print $4}}'); m=$(cat /sys/class/net/{device}/address); "
        f"r=$(ip route show dev {device} | grep -v 'scope link' || true); "
        f"ip link add {bridge} type bridge forward_delay 0; ip link set {bridge} address $m; "
        f"ip addr flush dev {device}; ip link set {device} master {bridge}; ip link set {bridge} up; "
        f"for x in $a; do ip addr add $x dev {bridge}; done; "
        f'echo "$r" | while read -r l; do [ -n "$l" ] && ip route replace $l dev {bridge}; done; echo ok'
    )
    log = f"/tmp/tb-{bridge}-$$.log"  # per call: emulated nodes share one /tmp
    return f"nohup sh -c {shlex.quote(script)} >{log} 2>&1 </dev/null & wait $!; cat {log}; rm -f {log}"


def start_command(
    name: str,
    *,
    image_dir: str,
    run_dir: str,
    mac: str,
    authorized_key: str,
    tap: str,
    cores: int = 1,
    memory_mb: int = 512,
    accel: str = "tcg",
    bridge: str = BRIDGE,
) -> str:
    """Overlay, QEMU daemonized with one NIC (`mac`, address by DHCP) on `bridge`; prints the
    QEMU pid. `run_dir` must hold `hostkey` (the VM's ed25519 private host key)."""
    words = guest.kernel_words(name, [guest.GuestNic("eth0", mac.lower(), "dhcp")], authorized_key)
    q = shlex.quote
    overlay, pid_file = f"{run_dir}/{OVERLAY}", f"{run_dir}/{PID_FILE}"
    argv = [QEMU, "-name", name, *Accel(accel, "").qemu_args(), "-smp", str(cores), "-m", str(memory_mb)]
    argv += ["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
    argv += ["-kernel", f"{image_dir}/{KERNEL}", "-initrd", f"{image_dir}/{INITRD}", "-append", " ".join([KERNEL_ARGS, *words])]
    argv += ["-drive", f"file={overlay},if=virtio,format=qcow2"]
    argv += ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no", "-device", f"virtio-net-pci,netdev=n0,mac={mac.lower()}"]
    argv += ["-fw_cfg", f"name={guest.HOST_KEY_FW_CFG},file={run_dir}/hostkey"]
    argv += ["-serial", f"file:{run_dir}/{SERIAL_LOG}", "-daemonize", "-pidfile", pid_file]
    return (
        f"set -e; chmod 600 {q(run_dir)}/hostkey; "
        f"qemu-img create -q -f qcow2 -b {q(image_dir)}/{DISK} -F qcow2 {q(overlay)}; "
        + " ".join(q(a) for a in argv)
        # a QEMU whose NIC cannot be plugged is killed, not left running unrecorded
        + f"; ip link set {q(tap)} master {q(bridge)} up || {{ kill -9 $(cat {q(pid_file)}); exit 1; }}; cat {q(pid_file)}"
    )


def stop_command(run_dir: str) -> str:
    """Kill the VM's QEMU (by its pid file, only if that pid is still a QEMU) and remove its run
    directory (overlay included); returns once the process is gone (5 s at most)."""
    q = shlex.quote(run_dir)
    return (
        f"p=$(cat {q}/{PID_FILE} 2>/dev/null || true); "
        f'if [ -n "$p" ] && grep -q qemu /proc/$p/comm 2>/dev/null; then kill -9 $p; fi; '
        f'i=0; while [ -n "$p" ] && [ -e /proc/$p ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; rm -rf {q}'
    )


QEMU_PACKAGES = "qemu-system-x86 qemu-utils"


def install_command() -> str:
    """QEMU on the node: nothing when it is there (an emulated node, an environment with it),
    else from the node's Debian mirror (Grid'5000's `-min` environments lack it)."""
    return (
        f"command -v {QEMU} >/dev/null && command -v qemu-img >/dev/null || "
        f"{{ export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q {QEMU_PACKAGES} >/dev/null; }}"
    )


def has_image_command(image_dir: str) -> str:
    """Prints `yes` when the node already holds the image (an earlier upload finished)."""
    return f"test -f {shlex.quote(image_dir)}/{COMPLETE} && echo yes || echo no"


def place_image_command(upload_dir: str, image_dir: str) -> str:
    """Make a finished upload the node's image, atomically: a concurrent upload of the same
    image (nodes sharing a file system) keeps whichever landed first."""
    u, i = shlex.quote(upload_dir), shlex.quote(image_dir)
    # an image directory without its marker (pruned by something else) is replaced
    return (
        f"touch {u}/{COMPLETE}; [ -d {i} ] && [ ! -f {i}/{COMPLETE} ] && rm -rf {i}; "
        f"mv -T {u} {i} 2>/dev/null || rm -rf {u}; test -f {i}/{COMPLETE}"
    )


def probe_command(image_dir: str, timeout: float) -> str:
    """Prints `kvm` when /dev/kvm boots the image's kernel to its probe line within `timeout`
    seconds, else `tcg` (the same test the local path makes, run on the node)."""
    log = "/tmp/tb-kvm-probe-$$.log"
    argv = [QEMU, *Accel("kvm", "").qemu_args(), "-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
    argv += ["-kernel", f"{image_dir}/{KERNEL}", "-initrd", f"{image_dir}/{INITRD}", "-append", f"{KERNEL_ARGS} tb_probe=1"]
    qemu = " ".join(shlex.quote(a) for a in argv) + f" -serial file:{log}"
    return (
        f"if [ -r /dev/kvm ] && [ -w /dev/kvm ] && timeout -s KILL {timeout:g} {qemu} >/dev/null 2>&1 "
        f"&& grep -q {shlex.quote(guest.PROBE_OK)} {log}; then echo kvm; else echo tcg; fi; rm -f {log}"
    )


def alive_command(pids: list[int]) -> str:
    """Prints each of `pids` that is still a QEMU process (a killed one not yet reaped, a
    zombie, is not)."""
    listed = " ".join(str(int(p)) for p in pids)
    return (
        f"for p in {listed}; do grep -q qemu /proc/$p/comm 2>/dev/null || continue; "
        f"s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f1); [ \"$s\" != Z ] && echo $p; done; true"
    )


HOSTS_BEGIN, HOSTS_END = "# pulumi-testbed: the reservation hosts", "# pulumi-testbed: end"


def etc_hosts_command(entries: list[tuple[str, list[str]]]) -> str:
    """Put the reservation's hosts (address, names) in /etc/hosts between our own markers,
    replacing an earlier block and nothing else (a VM's name is in no DNS)."""
    lines = [HOSTS_BEGIN, *(f"{address} {' '.join(names)}" for address, names in entries), HOSTS_END]
    block = shlex.quote("\n".join(lines))
    script = shlex.quote(f"/^{HOSTS_BEGIN}$/,/^{HOSTS_END}$/d")
    # rewritten in place, not renamed over: /etc/hosts may be a bind mount (an emulated node's is)
    return f"t=$(mktemp) && {{ sed {script} /etc/hosts; printf '%s\\n' {block}; }} > $t && cat $t > /etc/hosts; r=$?; rm -f $t; exit $r"
