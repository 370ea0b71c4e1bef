#!/usr/bin/env bash
# Baseline: the hand-written recipe of shared/reference/local-testbed.md (namespaces, bridge,
# one sshd per host under unshare, wait for every banner), for N hosts. Prints seconds to ready.
# Usage: raw_recipe.sh N   (cleans up after itself)
set -euo pipefail
N=$1 P=rawb$RANDOM- RUN=$(mktemp -d) NET=198.18.7
SYS_TMP=$(dirname "$(mktemp -u)") ROOT_HOME=$(getent passwd root | cut -d: -f6)
cleanup() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P" || true); do
    pids=$(ip netns pids "$ns"); [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns"
  done; rm -rf "$RUN"
}
trap cleanup EXIT
start=$(date +%s.%N)
ssh-keygen -q -t ed25519 -N '' -f "$RUN/id"
ip netns add ${P}br; ip -n ${P}br link set lo up
ip -n ${P}br link add br0 type bridge
ip -n ${P}br addr add $NET.254/24 dev br0; ip -n ${P}br link set br0 up
for i in $(seq "$N"); do h=h$i d=$RUN/h$i
  ip netns add $P$h; ip -n $P$h link set lo up
  ip link add eth0 netns $P$h type veth peer name v$h netns ${P}br
  ip -n ${P}br link set v$h master br0 up
  ip -n $P$h addr add $NET.$i/24 dev eth0; ip -n $P$h link set eth0 up
  mkdir -p $d/ssh $d/home/.ssh $d/scratch $d/log $d/run/sshd
  chmod 700 $d/home $d/home/.ssh; chmod 1777 $d/scratch
  ssh-keygen -q -t ed25519 -N '' -f $d/ssh/ssh_host_ed25519_key
  cp $RUN/id.pub $d/home/.ssh/authorized_keys
  printf '%s\n' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PidFile /run/sshd.pid' 'UsePAM no' \
    'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin prohibit-password' \
    'UseDNS no' 'MaxStartups 100:30:200' 'Subsystem sftp internal-sftp' > $d/ssh/sshd_config
  ip netns exec $P$h unshare --mount --uts --propagation private sh -c "
    mount --bind $d/ssh /etc/ssh && mount --bind $d/home $ROOT_HOME &&
    mount --bind $d/log /var/log && mount --bind $d/run /run &&
    mount --bind $d/scratch $SYS_TMP && hostname $h && exec /usr/sbin/sshd -E /var/log/sshd.log"
done
for i in $(seq "$N"); do
  until ip netns exec ${P}br sh -c "echo | nc -w1 $NET.$i 22 2>/dev/null | grep -q SSH-2.0"; do sleep 0.02; done
done
end=$(date +%s.%N)
python3 -c "print(f'{$end - $start:.2f}')"
