"""Running nodes are real local hosts: SSH with the user's key, deployment key and new host key
after kadeploy, kavlan moves that really connect eth1s, teardown on DELETE, stop and crash."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

from g5k_emulator.testing import grid5000_client

from .conftest import wait_state

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "sshd", "nc", "ssh", "ssh-keygen", "unshare")),
    reason="real hosts need root, iproute2, openssh, netcat-openbsd and util-linux",
)


def keypair(path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return str(path)


def ssh(emu, key: str, ip: str, command: str, known_hosts: str, strict: str = "accept-new") -> subprocess.CompletedProcess:
    info = emu.control("GET", "ssh")
    return subprocess.run(
        [
            "ssh",
            "-i",
            key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            f"ProxyCommand={info['proxyCommand']}",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"StrictHostKeyChecking={strict}",
            "-o",
            "LogLevel=ERROR",
            f"{info['user']}@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# An ICMP echo (what ping does) in plain Python: the machine has no ping binary. Run as root on a
# node; prints "reply from <addr>" when the echo reply arrives within 3 s.
PING = r"""
import os, socket, struct, sys, time
target = sys.argv[1]
def checksum(data):
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
ident = os.getpid() & 0xFFFF
payload = b"pulumi-testbed"
header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, 1) + payload
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(3)
sock.sendto(packet, (target, 0))
deadline = time.time() + 3
while time.time() < deadline:
    try:
        data, (src, _) = sock.recvfrom(2048)
    except socket.timeout:
        sys.exit("no reply")
    kind, _, _, rid, _ = struct.unpack("!BBHHH", data[20:28])
    if kind == 0 and rid == ident and src == target:
        print("reply from", src)
        break
"""


def ping_command(target: str) -> str:
    import shlex

    return f"python3 -c {shlex.quote(PING)} {target}"


def namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def node_ip(site, fqdn: str) -> str:
    short = fqdn.split(".")[0]
    return site.clusters[short.split("-")[0]].nodes[short].network_adapters[0]["ip"]


def test_nodes_answer_ssh_deploy_reinstalls_and_vlans_connect(start_emulator, tmp_path):
    user_key = keypair(tmp_path / "user")
    deploy_key = keypair(tmp_path / "deploy")
    known = str(tmp_path / "known_hosts")
    emu = start_emulator(hosts=True, users=[f"alice:x:{user_key}.pub"])
    prefix = emu.control("GET", "ssh")["namespacePrefix"]
    assert prefix.startswith("tbemu-") and not prefix.startswith("tb-")
    site = grid5000_client(emu).sites["rennes"]
    job = site.jobs.create(
        {
            "command": "sleep 31536000",
            "types": ["deploy"],
            "resources": "{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1,walltime=2:00:00",
        }
    )
    wait_state(job, "running", timeout=60)
    a, b = job.assigned_nodes
    ip_a, ip_b = node_ip(site, a), node_ip(site, b)

    # an undeployed node: root with the user's registered key
    r = ssh(emu, user_key, ip_a, "hostname; ip -4 -o addr show eth0", known)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == a.split(".")[0] and f"{ip_a}/" in r.stdout
    assert ssh(emu, deploy_key, ip_a, "true", known).returncode != 0

    # kavlan: both eth1 into the job's vlan, then they talk over it
    vlan = job.resources_by_type["vlans"][0]
    eth1 = [n.replace(".rennes", "-eth1.rennes") for n in (a, b)]
    for address in eth1:  # one POST per node, as EnOSlib does
        assert site.vlans[vlan].nodes.submit([address])[address]["status"] == "success"
    node_b = site.clusters["paravance"].nodes[b.split(".")[0]]
    vlan_ip_b = node_b.kavlan["eth1"][f"kavlan-{vlan}"]

    def reach(target: str) -> subprocess.CompletedProcess:
        return ssh(emu, user_key, ip_a, f"ip -4 -o route get {target}; nc -z -w 3 {target} 22 && echo reached", known)

    r = emu.wait_for(lambda: (lambda p: p if "reached" in p.stdout else None)(reach(vlan_ip_b)), timeout=20)
    assert " dev eth1 " in r.stdout
    r = ssh(emu, user_key, ip_a, ping_command(vlan_ip_b), known)
    assert f"reply from {vlan_ip_b}" in r.stdout, r.stdout + r.stderr
    # nodes resolve each other's names as Grid'5000's DNS would
    name_b = f"{b.split('.')[0]}-eth1-kavlan-{vlan}.rennes.grid5000.fr"
    r = ssh(emu, user_key, ip_a, f"getent hosts {name_b} {b}", known)
    assert vlan_ip_b in r.stdout and ip_b in r.stdout, r.stdout
    # b's eth1 back to DEFAULT: the vlan address is gone, a cannot reach it any more
    site.vlans["DEFAULT"].nodes.submit([eth1[1]])
    emu.wait_for(lambda: "reached" not in reach(vlan_ip_b).stdout, timeout=20)
    assert "reply" not in ssh(emu, user_key, ip_a, ping_command(vlan_ip_b), known).stdout

    # kadeploy with a key: root logs in with that key, the host key changed, the user key is gone
    before = subprocess.run(["ssh-keygen", "-F", ip_a, "-f", known], capture_output=True, text=True).stdout
    assert before
    with open(f"{deploy_key}.pub") as f:
        dep = site.deployments.create({"environment": "debian12-min", "nodes": [a, b], "key": f.read()})
    emu.wait_for(lambda: (emu.advance(60), dep.refresh(), dep.status == "terminated")[2], timeout=60)
    assert {r["state"] for r in dep.result.values()} == {"OK"}
    strict = ssh(emu, deploy_key, ip_a, "true", known, strict="yes")
    assert strict.returncode != 0  # the old host key no longer matches: reinstalled
    fresh = str(tmp_path / "known_hosts2")
    r = ssh(emu, deploy_key, ip_a, "hostname", fresh)
    assert r.returncode == 0 and r.stdout.strip() == a.split(".")[0], r.stderr
    assert ssh(emu, user_key, ip_a, "true", fresh).returncode != 0
    assert ssh(emu, deploy_key, ip_b, "true", fresh).returncode == 0

    # DELETE: the nodes go away
    job.delete()
    wait_state(job, "error", emu, step=5, timeout=60)
    assert namespaces(prefix) == [prefix + "sw"]
    assert ssh(emu, deploy_key, ip_a, "true", fresh).returncode != 0


def test_walltime_expiry_and_emulator_stop_leave_nothing_behind(start_emulator, tmp_path):
    user_key = keypair(tmp_path / "user")
    emu = start_emulator(hosts=True, users=[f"alice:x:{user_key}.pub"])
    prefix = emu.control("GET", "ssh")["namespacePrefix"]
    site = grid5000_client(emu).sites["nancy"]
    short = wait_state(site.jobs.create({"command": "x", "resources": "{cluster='gros'}/nodes=2,walltime=1:00:00"}), "running", timeout=60)
    long = wait_state(site.jobs.create({"command": "x", "resources": "{cluster='grisou'}/nodes=3,walltime=5:00:00"}), "running", timeout=60)
    assert len(namespaces(prefix)) == 1 + 5
    emu.advance(3600)
    wait_state(short, "error", timeout=60)
    assert len(namespaces(prefix)) == 1 + 3
    pids = [n["sshdPid"] for n in emu.control("GET", "nodes")["items"]]
    assert len(pids) == 3 and all(alive(p) for p in pids)

    # a crash leaves the namespaces; the restarted emulator sweeps them and rebuilds the running job's nodes
    emu.restart(signal.SIGKILL)
    assert emu.control("GET", "ssh")["namespacePrefix"] == prefix
    site = grid5000_client(emu).sites["nancy"]
    wait_state(site.jobs[long.uid], "running")
    emu.wait_for(lambda: len(emu.control("GET", "nodes")["items"]) == 3, timeout=60)
    assert len(namespaces(prefix)) == 1 + 3
    ip = node_ip(site, long.assigned_nodes[0])
    emu.wait_for(lambda: ssh(emu, user_key, ip, "true", str(tmp_path / "kh")).returncode == 0, timeout=30)

    # a clean stop tears every node down
    pids = [n["sshdPid"] for n in emu.control("GET", "nodes")["items"]]
    assert emu.stop() == 0
    assert namespaces(prefix) == []
    emu.wait_for(lambda: not any(alive(p) for p in pids), timeout=10)


def test_nodes_of_two_sites_talk_over_a_global_vlan(start_emulator, tmp_path):
    user_key = keypair(tmp_path / "user")
    known = str(tmp_path / "known_hosts")
    emu = start_emulator(hosts=True, users=[f"alice:x:{user_key}.pub"])
    gk = grid5000_client(emu)
    rennes, nancy = gk.sites["rennes"], gk.sites["nancy"]
    owner = rennes.jobs.create({"command": "x", "resources": "{cluster='parasilo'}/nodes=1+{type='kavlan-global'}/vlan=1"})
    remote = nancy.jobs.create({"command": "x", "resources": "{cluster='grisou'}/nodes=1"})
    wait_state(owner, "running", timeout=60)
    wait_state(remote, "running", timeout=60)
    a, b = owner.assigned_nodes[0], remote.assigned_nodes[0]
    assert rennes.vlans["16"].nodes.submit([a.replace(".rennes", "-eth1.rennes")])
    assert nancy.vlans["16"].nodes.submit([b.replace(".nancy", "-eth1.nancy")])
    target = nancy.clusters["grisou"].nodes[b.split(".")[0]].kavlan["eth1"]["kavlan-16"]

    def reached() -> bool:
        r = ssh(emu, user_key, node_ip(rennes, a), f"nc -z -w 3 {target} 22 && echo reached", known)
        return "reached" in r.stdout

    emu.wait_for(reached, timeout=20)
    # the vlan's job ends: the nancy node (still running) is unplugged from it
    owner.delete()
    wait_state(owner, "error", emu, step=5, timeout=60)
    r = ssh(emu, user_key, node_ip(nancy, b), "ip -4 -o addr show eth1", known)
    assert r.returncode == 0 and target not in r.stdout


def test_routed_vlans_are_routed_and_local_ones_are_not(start_emulator, tmp_path):
    user_key = keypair(tmp_path / "user")
    known = str(tmp_path / "known_hosts")
    emu = start_emulator(hosts=True, users=[f"alice:x:{user_key}.pub"], deploy_seconds=10)
    site = grid5000_client(emu).sites["rennes"]
    job = wait_state(
        site.jobs.create(
            {
                "command": "x",
                "types": ["deploy"],
                "resources": "{cluster='paravance'}/nodes=3+{type='kavlan'}/vlan=1+{type='kavlan-local'}/vlan=1",
            }
        ),
        "running",
        timeout=60,
    )
    a, b, c = job.assigned_nodes
    routed_vlan, local_vlan = job.resources_by_type["vlans"]
    with open(f"{user_key}.pub") as f:
        key = f.read()
    deps = [
        site.deployments.create({"environment": "debian12-min", "nodes": [n], "vlan": v, "key": key})
        for n, v in ((b, routed_vlan), (c, local_vlan))
    ]
    for dep in deps:
        emu.wait_for(lambda dep=dep: (emu.advance(5), dep.refresh(), dep.status == "terminated")[2], timeout=60)
    addr_b = site.clusters["paravance"].nodes[b.split(".")[0]].kavlan["eth0"][f"kavlan-{routed_vlan}"]
    addr_c = site.clusters["paravance"].nodes[c.split(".")[0]].kavlan["eth0"][f"kavlan-{local_vlan}"]
    ip_a = node_ip(site, a)
    # b moved with its primary interface: reachable at its vlan address, from a node in production too
    assert ssh(emu, user_key, addr_b, "ip -4 -o addr show eth0", known).stdout.count(addr_b) == 1
    r = ssh(emu, user_key, ip_a, f"nc -z -w 3 {addr_b} 22 && echo reached; nc -z -w 3 {addr_c} 22 && echo local", known)
    assert "reached" in r.stdout and "local" not in r.stdout
