#!/usr/bin/env bash
# Installs the Debian packages the project needs, only when something is missing (idempotent, fast
# when done). The local testbed needs iproute2 (namespaces, bridges, veth), openssh (one sshd per
# host), netcat-openbsd (ProxyCommand into the switch namespace) and util-linux (unshare, nsenter);
# iperf3 and tmux are what the example experiments install on their hosts. Monitoring
# (testbed:services:Monitoring) installs prometheus and prometheus-node-exporter on its hosts: the
# local testbed's hosts share this machine's /usr but have no route to a mirror, so they are
# installed here; the CLI's `testbed metrics --backup` runs prometheus locally too. chromium
# (headless) is the browser the tests open the UI pages with; graphviz draws `testbed topology`;
# fping (and ping) measure what a Netem constraint gives.
# Virtual machines (testbed_provider.hosts.vm: hosts with a kernel of their own, for netem): QEMU
# and qemu-img, and what builds their image from Debian's archive: mmdebstrap (the root file
# system), busybox-static, cpio and kmod (the initramfs and the kernel's module index), e2fsprogs.
set -euo pipefail

packages=(iproute2 openssh-server openssh-client netcat-openbsd util-linux procps iperf3 tmux rsync
  prometheus prometheus-node-exporter chromium graphviz fonts-dejavu-core fping iputils-ping
  qemu-system-x86 qemu-utils mmdebstrap busybox-static cpio kmod e2fsprogs dnsmasq-base)
# A package is missing when dpkg does not report it installed.
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-system: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Installing openssh-server (or prometheus) must not start a machine-wide daemon: the testbed starts
# its own per host.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
trap '[ $created_policy -eq 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-system: done"
