"""LocalTestbed against real namespaces and sshd (root only): reserve, views, network,
inspect, reconcile (repair, scale up and down), release, concurrent reservations, orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed_provider.common.pids import running as process_running
from testbed_provider.hosts.netns import list_namespaces, namespace_id, pids_in
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationError, ReservationSpec
from testbed_provider.testbeds.local import LocalTestbed

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]


# One ICMP echo (Debian's ping is not installed here): a raw socket, so it needs root like the rest.
PING = r"""
import os, socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); return ~(s + (s >> 16)) & 0xffff
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); sock.settimeout(2)
ident = os.getpid() & 0xffff; body = b"testbed!"
packet = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + body
sock.sendto(struct.pack("!BBHHH", 8, 0, csum(packet), ident, 1) + body, (sys.argv[1], 0))
while True:
    data, (src, _) = sock.recvfrom(1024)
    kind, _, _, rid, _ = struct.unpack("!BBHHH", data[20:28])
    if kind == 0 and rid == ident and src == sys.argv[1]:
        print("reply from", src); break
"""


def spec(clients: int = 2, name: str = "backend-test") -> ReservationSpec:
    """3 hosts in 2 groups (by default); the experiment network joins only the clients."""
    return ReservationSpec(
        name=name,
        machines=[MachineGroup(["server"], 1), MachineGroup(["client", "worker"], clients)],
        networks=[NetworkSpec("exp", ["client"], None)],
    )


async def sh(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, list(argv), capture_output=True, text=True, timeout=timeout)


async def ssh(state: dict, host: str, command: str) -> str:
    result = await sh("ssh", "-F", state["local"]["sshConfig"], host, command)
    assert result.returncode == 0, f"ssh {host} {command!r}: {result.stderr}"
    return result.stdout.strip()


def host(state: dict, name: str) -> dict:
    return next(h for h in state["hosts"] if h["name"] == name)


async def banner_from(namespace: str, address: str, timeout: float = 5) -> str:
    """The first line port 22 at `address` sends, read from inside `namespace`."""
    code = "import socket, sys; s = socket.create_connection((sys.argv[1], 22), float(sys.argv[2])); print(s.makefile().readline())"
    result = await sh("ip", "netns", "exec", namespace, sys.executable, "-c", code, address, str(timeout), timeout=timeout + 2)
    return result.stdout.splitlines()[0] if result.stdout else result.stderr


def running(pid: int) -> bool:
    """Alive and not a zombie (killed daemons wait for PID 1 to reap them)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def prefix_namespaces(state: dict) -> list[str]:
    return list_namespaces(state["local"]["prefix"])


async def test_reserve_views_network_inspect_reconcile_release(beds):
    testbed = beds.testbed()
    state = await beds.reserve(spec())
    names = [h["name"] for h in state["hosts"]]
    assert names == ["server-1", "client-1", "client-2"]
    assert json.loads(json.dumps(state)) == state  # JSON-able
    assert set(state) == {"backend", "id", "hosts", "networks", "ssh", "local"}
    assert state["local"]["prefix"] == state["id"] + "-"
    assert host(state, "server-1")["networks"] == []
    assert [n["interface"] for n in host(state, "client-2")["networks"]] == ["eth1"]
    assert state["networks"] == [{"id": "exp", "cidr": "198.18.0.0/24", "roles": ["client"]}]
    assert any("SSH ready on 3/3" in m for m in beds.messages), beds.messages
    key_body = state["ssh"]["privateKey"].splitlines()[1]
    assert not any(key_body in m for m in beds.messages)
    run_dir = state["local"]["runDir"]
    manifest = json.load(open(os.path.join(run_dir, "manifest.json")))
    assert manifest["status"] == "ready" and manifest["owner"] == "urn:test" and manifest["creatorPid"] == os.getpid()
    assert os.stat(run_dir).st_mode & 0o777 == 0o700

    # every host answers SSH with its own name (through the generated ssh_config)
    got = await asyncio.gather(*(ssh(state, n, "hostname") for n in names))
    assert got == names

    # private /tmp and /root, shared /usr
    assert await ssh(state, "server-1", "ls -A /tmp") == ""
    marker = f"/usr/local/share/.tb-test-{state['id']}"
    try:
        await ssh(state, "server-1", f"echo private > /root/only-here && echo shared > {marker}")
        assert await ssh(state, "client-1", "ls -A /root/only-here 2>/dev/null || echo absent") == "absent"
        assert await ssh(state, "client-1", f"cat {marker}") == "shared"
        assert not os.path.exists("/root/only-here")
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    assert "client-2" in await ssh(state, "client-1", "getent hosts client-2")

    # experiment network: client-1 → client-2 over eth1; the server is not on it; no default route
    c1_ns = state["local"]["hosts"]["client-1"]["namespace"]
    c2_exp = host(state, "client-2")["networks"][0]["address"]
    ping = await sh("ip", "netns", "exec", c1_ns, sys.executable, "-c", PING, c2_exp)
    assert ping.returncode == 0 and "reply" in ping.stdout, ping.stdout + ping.stderr
    assert "dev eth1" in (await sh("ip", "-n", c1_ns, "route", "get", c2_exp)).stdout
    assert "eth1" not in await ssh(state, "server-1", "ip -br link")
    assert (await sh("ip", "-n", c1_ns, "route", "show", "default")).stdout.strip() == ""

    # management network between hosts (this also fills client-1's neighbour cache for server-1)
    server_mgmt = host(state, "server-1")["address"]
    assert (await banner_from(c1_ns, server_mgmt)).startswith("SSH-2.0")

    # inspect: a host whose sshd died is gone
    assert [h["name"] for h in (await testbed.inspect(state))["hosts"]] == names
    killed = state["local"]["hosts"]["server-1"]["sshdPid"]
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 30  # until it has died (not a fixed pause: a busy machine takes longer)
    while process_running(killed) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    seen = await testbed.inspect(state)
    assert [h["name"] for h in seen["hosts"]] == ["client-1", "client-2"]

    # reconcile repairs it (from the inspected state, as after `pulumi refresh`)
    state = await testbed.reconcile(seen, spec(), beds.progress)
    beds.states.append(state)
    assert [h["name"] for h in state["hosts"]] == names
    assert host(state, "server-1")["address"] == "198.19.0.1"  # lowest free: the same address again
    assert await ssh(state, "server-1", "hostname") == "server-1"
    # …and the other hosts reach it at once: same address, same MAC, so no stale neighbour entry
    assert (await banner_from(c1_ns, server_mgmt, timeout=3)).startswith("SSH-2.0")

    # scale up: client-3 joins the network; kept hosts keep their pid and see it in /etc/hosts
    pid_c1 = state["local"]["hosts"]["client-1"]["sshdPid"]
    state = await testbed.reconcile(state, spec(clients=3), beds.progress)
    beds.states.append(state)
    assert [h["name"] for h in state["hosts"]] == ["server-1", "client-1", "client-2", "client-3"]
    assert state["local"]["hosts"]["client-1"]["sshdPid"] == pid_c1
    assert host(state, "client-3")["networks"][0]["address"] == "198.18.0.3"
    assert await ssh(state, "client-3", "hostname") == "client-3"
    assert "client-3" in await ssh(state, "client-1", "getent hosts client-3")

    # scale down: client-2 and client-3 go away, namespaces included
    state = await testbed.reconcile(state, spec(clients=1), beds.progress)
    beds.states.append(state)
    assert [h["name"] for h in state["hosts"]] == ["server-1", "client-1"]
    assert sorted(prefix_namespaces(state)) == sorted(
        [state["local"]["switchNamespace"], *(h["namespace"] for h in state["local"]["hosts"].values())]
    )
    assert any("removing client-2, client-3" in m for m in beds.messages), beds.messages

    # release: no namespace with the prefix, no process left inside, no run dir; idempotent
    targets = [namespace_id(n) for n in prefix_namespaces(state)]
    pids = pids_in(t for t in targets if t)
    assert pids
    await testbed.release(state, beds.progress)
    assert prefix_namespaces(state) == []
    assert not [pid for pid in pids if running(pid)]
    assert not os.path.exists(run_dir)
    await testbed.release(state, beds.progress)
    assert await testbed.inspect(state) is None


async def test_two_reservations_with_one_name_do_not_collide(beds):
    a, b = await asyncio.gather(beds.reserve(spec(clients=1)), beds.reserve(spec(clients=1)))
    assert a["id"] != b["id"]
    assert not a["local"]["prefix"].startswith(b["local"]["prefix"]) and not b["local"]["prefix"].startswith(a["local"]["prefix"])
    assert host(a, "server-1")["address"] == host(b, "server-1")["address"]  # same addresses, separate switches
    assert a["ssh"]["knownHosts"] != b["ssh"]["knownHosts"]
    assert await ssh(a, "server-1", "hostname") == await ssh(b, "server-1", "hostname") == "server-1"
    testbed = beds.testbed()
    await testbed.release(a, beds.progress)
    assert prefix_namespaces(a) == [] and len(prefix_namespaces(b)) == 3
    assert await ssh(b, "client-1", "hostname") == "client-1"


async def test_orphan_sweep_releases_interrupted_creates_of_the_same_owner_only(beds):
    owner = "urn:pulumi:s::p::testbed:index:Reservation::nodes"
    mine = await beds.reserve(spec(clients=1), owner=owner)
    other = await beds.reserve(spec(clients=1), owner="urn:someone-else")
    dead = subprocess.Popen(["true"])
    dead.wait()
    for state in (mine, other):  # both look like a create whose plugin was killed midway
        path = os.path.join(state["local"]["runDir"], "manifest.json")
        data = json.load(open(path))
        json.dump({**data, "status": "creating", "creatorPid": dead.pid, "creatorStartTime": None}, open(path, "w"))

    fresh = await beds.reserve(ReservationSpec("other", [MachineGroup(["solo"], 1)]), owner=owner)
    assert prefix_namespaces(mine) == [] and not os.path.exists(mine["local"]["runDir"])
    assert any("interrupted create" in m and mine["id"] in m for m in beds.messages), beds.messages
    assert len(prefix_namespaces(other)) == 3 and os.path.exists(other["local"]["runDir"])
    assert [h["name"] for h in fresh["hosts"]] == ["solo-1"]


async def test_cancel_before_anything_exists_leaves_nothing(beds):
    cancelled = asyncio.Event()
    testbed = LocalTestbed(run_root=beds.run_root, cancelled=cancelled)

    async def progress(message: str) -> None:
        if message.startswith("creating"):
            cancelled.set()

    with pytest.raises(ReservationError) as err:
        await testbed.reserve(spec(), "urn:test", progress)
    assert "cancelled" in str(err.value) and err.value.state is None
    assert os.listdir(beds.run_root) == []


async def test_cancel_midway_raises_with_the_partial_state(beds, monkeypatch):
    from testbed_provider.testbeds.local import testbed as module

    cancelled = asyncio.Event()
    testbed = LocalTestbed(run_root=beds.run_root, cancelled=cancelled)
    real_wire = module.wire_hosts

    async def wire_then_cancel(*args, **kwargs):  # the engine's Cancel arrives once namespaces exist
        cancelled.set()
        return await real_wire(*args, **kwargs)

    monkeypatch.setattr(module, "wire_hosts", wire_then_cancel)
    started = time.monotonic()
    with pytest.raises(ReservationError) as err:
        await testbed.reserve(spec(), "urn:test", beds.progress)
    assert time.monotonic() - started < 5
    assert "cancelled" in str(err.value)
    partial = err.value.state
    assert partial is not None and partial["hosts"] == []
    beds.states.append(partial)
    assert len(prefix_namespaces(partial)) == 4  # switch + 3 hosts, all recorded
    assert set(partial["local"]["hosts"]) == {"server-1", "client-1", "client-2"}
    await testbed.release(partial, beds.progress)
    assert prefix_namespaces(partial) == [] and not os.path.exists(partial["local"]["runDir"])


async def test_ssh_timeout_is_a_partial_failure_naming_the_hosts(beds):
    testbed = beds.testbed(ready_timeout=0.0)
    with pytest.raises(ReservationError) as err:
        await beds.reserve(spec(clients=1), testbed=testbed)
    message = str(err.value)
    assert "SSH did not answer" in message and "server-1" in message and "PRIVATE" not in message
    assert err.value.state is not None and prefix_namespaces(err.value.state)
