"""What runs inside a VM before sshd: the initramfs's /init, the root file system's PID 1, and
the words of the kernel command line that tell them the VM's name, addresses and client key.

The contract between the host side (qemu.py builds the command line) and the guest (these
scripts read it) lives here, in one file, and is part of the image's recipe key.

- initramfs /init (busybox): loads the few modules the root disk needs (virtio, ext4), mounts
  /dev/vda and switch_roots to /sbin/tb-init. With `tb_probe=1` it only prints PROBE_OK on the
  serial console and reboots (with `-no-reboot`, QEMU exits): the accelerator probe.
- /sbin/tb-init (PID 1 of the root file system, /bin/sh): mounts proc, sys, devpts, /run; sets
  the hostname; renames each NIC found by its MAC and gives it its address (or asks the
  network's DHCP server with busybox's udhcpc); installs the client
  key as root's only authorized key and the host key QEMU hands over by fw_cfg (and, when given,
  the reservation's /etc/hosts, fw_cfg item ETC_HOSTS_FW_CFG); starts sshd; then
  stays PID 1 as a small reaper. It prints `tb-init: …` lines on the serial console.

Kernel command-line words (each validated on the host side: no spaces, no shell syntax):
  tb_hostname=<label>
  tb_nic=<device>,<mac>,<address>/<prefix>      (once per NIC, in order; `dhcp` for the address)
  tb_authkey=<type>,<base64>                    (the client's public key)
The host's private key never appears on a command line (neither QEMU's, visible to every user of
the machine, nor the guest's /proc/cmdline): QEMU reads it from a 0600 file in the run dir and
exposes it as the fw_cfg item HOST_KEY_FW_CFG, which tb-init copies to /etc/ssh and which stays
readable only by root in the guest (/sys/firmware/qemu_fw_cfg). So the host key is the one the
controller generated and pinned in known_hosts before the VM started.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

PROBE_OK = "TB-PROBE-OK"
READY_LINE = "tb-init: sshd started"
HOST_KEY_FW_CFG = "opt/testbed/ssh_host_ed25519_key"
ETC_HOSTS_FW_CFG = "opt/testbed/etc_hosts"  # the reservation's /etc/hosts at boot (optional)
GUEST_INIT_PATH = "/sbin/tb-init"
MODULE_DIR = "/modules"  # in the initramfs: <NN>-<name>.ko in load order

INITRAMFS_INIT = f"""\
#!/bin/busybox sh
# pulumi-testbed VM initramfs: load the root disk's modules, mount it, switch_root.
/bin/busybox mkdir -p /bin /proc /sys /dev /newroot
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
say() {{ echo "initramfs: $*" > /dev/console; }}
for m in {MODULE_DIR}/*.ko; do insmod "$m" 2>/dev/null || say "insmod $m failed"; done
case " $(cat /proc/cmdline) " in *" tb_probe=1 "*) echo "{PROBE_OK}" > /dev/console; reboot -f;; esac
i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1)); [ $i -gt 3000 ] && {{ say "no /dev/vda"; reboot -f; }}
  usleep 10000
done
mount -t ext4 -o rw /dev/vda /newroot || {{ say "cannot mount /dev/vda"; reboot -f; }}
umount /proc
mount --move /dev /newroot/dev
exec switch_root /newroot {GUEST_INIT_PATH}
say "switch_root failed"
reboot -f
"""

# PID 1 after sshd has started: reap whatever is reparented to it (daemons started over SSH).
REAPER = """\
import os, signal, time
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(s, signal.SIG_IGN)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(1)
    except OSError:
        time.sleep(1)
"""

GUEST_INIT = f"""\
#!/bin/sh
# pulumi-testbed VM PID 1: a host's minimal start-up (no systemd), then sshd. See guest.py.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock
say() {{ echo "tb-init: $*" > /dev/console; }}
name=localhost nics= authkey=
set -f
for w in $(cat /proc/cmdline); do
  case $w in
    tb_hostname=*) name=${{w#tb_hostname=}};;
    tb_nic=*) nics="$nics ${{w#tb_nic=}}";;
    tb_authkey=*) authkey=${{w#tb_authkey=}};;
  esac
done
set +f
hostname "$name"
echo "$name" > /etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' "$name" > /etc/hosts
ip link set lo up
# busybox udhcpc's lease script (tb_nic=<device>,<mac>,dhcp): the address, then the default route.
cat > /run/tb-dhcp <<'EOS'
#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
ip addr flush dev "$interface"
ip addr add "$ip/${{mask:-24}}" dev "$interface"
[ -n "$router" ] && ip route replace default via "${{router%% *}}" dev "$interface"
exit 0
EOS
chmod 755 /run/tb-dhcp
# NICs by MAC: first to temporary names (a wanted name may be another NIC's current one).
k=0
for n in $nics; do
  IFS=,; set -- $n; IFS=' '
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$2" ] && ip link set dev "${{d##*/}}" name "tbnic$k"
  done
  k=$((k + 1))
done
k=0
for n in $nics; do
  IFS=,; set -- $n; IFS=' '
  if [ -e /sys/class/net/tbnic$k ]; then
    if [ "$3" = dhcp ]; then
      ip link set dev "tbnic$k" name "$1" && ip link set dev "$1" up &&
        busybox udhcpc -i "$1" -n -q -t 20 -T 1 -s /run/tb-dhcp >/dev/console 2>&1 && say "$1 $2 dhcp"
    else
      ip link set dev "tbnic$k" name "$1" && ip addr add "$3" dev "$1" && ip link set dev "$1" up && say "$1 $2 $3"
    fi
  else
    say "no NIC with MAC $2 for $1"
  fi
  k=$((k + 1))
done
mkdir -p /root/.ssh && chmod 700 /root/.ssh
echo "${{authkey%%,*}} ${{authkey#*,}}" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
modprobe qemu_fw_cfg
key=/sys/firmware/qemu_fw_cfg/by_name/{HOST_KEY_FW_CFG}/raw
if [ -r "$key" ]; then
  (umask 077; cat "$key" > /etc/ssh/ssh_host_ed25519_key)
  ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub
else
  say "no host key in fw_cfg"
fi
hosts=/sys/firmware/qemu_fw_cfg/by_name/{ETC_HOSTS_FW_CFG}/raw
[ -r "$hosts" ] && cat "$hosts" > /etc/hosts  # (it names this VM too, by its management address)
modprobe sch_netem 2>/dev/null
if /usr/sbin/sshd -E /var/log/sshd.log; then say "sshd started"; else say "sshd failed"; fi
exec /usr/bin/python3 -I -S -c '{REAPER}'
"""

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DEVICE = re.compile(r"^[a-z][a-z0-9]{0,14}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_KEY_TYPE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521))$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


@dataclass(frozen=True)
class GuestNic:
    """One NIC as the guest configures it: `device` (eth0…) found by `mac`, `address` a.b.c.d/len
    or "dhcp"."""

    device: str
    mac: str
    address: str


def kernel_words(hostname: str, nics: list[GuestNic], authorized_key: str) -> list[str]:
    """The `tb_*` words of the kernel command line; ValueError on anything tb-init cannot take."""
    if not _LABEL.match(hostname):
        raise ValueError(f"VM host name {hostname!r} is not a DNS label (lower case letters, digits, dashes)")
    words = [f"tb_hostname={hostname}"]
    seen: set[str] = set()
    for nic in nics:
        if not _DEVICE.match(nic.device) or nic.device.startswith("tbnic") or nic.device in seen:
            raise ValueError(f"VM NIC name {nic.device!r} is not a usable, unique interface name")
        seen.add(nic.device)
        if not _MAC.match(nic.mac):
            raise ValueError(f"VM NIC MAC {nic.mac!r} is not of the form 02:00:00:00:00:01 (lower case)")
        if nic.address == "dhcp":  # the network's DHCP server gives it (VMonG5k's MAC scheme)
            words.append(f"tb_nic={nic.device},{nic.mac},dhcp")
            continue
        ipaddress.IPv4Interface(nic.address)  # ValueError if not a.b.c.d/len
        if "/" not in nic.address:
            raise ValueError(f"VM NIC address {nic.address!r} needs its prefix length (a.b.c.d/len)")
        words.append(f"tb_nic={nic.device},{nic.mac},{nic.address}")
    parts = authorized_key.split()
    if len(parts) < 2 or not _KEY_TYPE.match(parts[0]) or not _BASE64.match(parts[1]):
        raise ValueError("the VM's authorized key is not an OpenSSH public key (`<type> <base64>`)")
    words.append(f"tb_authkey={parts[0]},{parts[1]}")
    return words
