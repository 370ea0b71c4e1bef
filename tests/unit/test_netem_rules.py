"""Netem rules: Check failures (units, models, unknown roles and networks), the exact tc commands of
both models (symmetric, IPv6, accurate), what an update changes, the capability probe's verdict,
and fping/ping reports parsed from real captured output (and from fping run here, when present)."""

import asyncio
import copy
import shutil
import subprocess

import pytest

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.codec import UNKNOWN
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.resources.base import PlannedHosts, ProviderContext
from testbed_provider.resources.diff import Kind
from testbed_provider.resources.netem import Netem, Pair, _record, applied_output, expected, plan_of
from testbed_provider.services import netem as tc

from .test_command_rules import INVENTORY

INV = copy.deepcopy(INVENTORY)
for _h, _n in zip(INV["hosts"], ("198.18.0.1", "198.18.0.2")):
    _h["networks"] = [{"id": "experiment", "address": _n, "interface": "eth1", "cidr": "198.18.0.0/24"}]
PAIR = {"inventory": INV, "constraints": [{"src": "client", "dst": "server", "delay": "50ms", "rate": "100mbit"}]}
STAR = {"inventory": INV, "hosts": [{"on": "server", "delay": "10ms", "rate": "1gbit"}]}
TC, IP = tc.TC, tc.IP


def controller(planned=None):
    ctx = ProviderContext(config=ProviderConfig(), log=EngineLog(None))
    ctx.planned.update(planned or {})
    return Netem(ctx)


def failures(news, planned=None):
    return {f.property: f.reason for f in asyncio.run(controller(planned).check("n", {}, news)).failures}


def test_check_units_and_models():
    assert failures(PAIR) == {} and failures(STAR) == {}
    c = lambda **kw: {**PAIR, "constraints": [{**PAIR["constraints"][0], **kw}]}  # noqa: E731
    assert failures(c(delay="50")) == {
        "constraints[0].delay": "must be a time such as `50ms`, `0.5ms`, `200us` or `1s` (got the string `50`)"
    }
    assert "a rate in bits per second such as `100mbit`" in failures(c(rate="100MB"))["constraints[0].rate"]
    assert failures(c(rate="100Mbit")) == {}  # tc's units are case-insensitive
    assert failures(c(rate="0mbit"))["constraints[0].rate"].startswith("must be above zero")
    assert "a percentage such as `0.1%`" in failures(c(loss="0.1"))["constraints[0].loss"]
    assert failures(c(loss="101%"))["constraints[0].loss"] == "must be at most 100% (got 101%)"
    assert failures(c(jitter="5ms", delay=None))["constraints[0].jitter"] == "a jitter needs a `delay` to vary"
    assert "constrains nothing" in failures({**PAIR, "constraints": [{"src": "client", "dst": "server"}]})["constraints[0]"]
    assert "are exclusive" in failures({**STAR, "defaultDelay": "5ms"})["hosts"]
    assert "nothing to emulate" in failures({"inventory": INV})["hosts"]
    assert "exclusive (EnOSlib's rule)" in failures({**PAIR, "groups": ["server"], "except": ["client"]})["except"]
    assert "is for the per-group model" in failures({**STAR, "accurate": True})["accurate"]
    assert failures({**PAIR, "inventory": UNKNOWN}) == {}  # judged once known


def test_check_unknown_roles_hosts_and_networks():
    assert (
        "unknown role or host `clients`"
        in failures({**PAIR, "constraints": [{"src": "clients", "dst": "server", "rate": "1mbit"}]})["constraints[0].src"]
    )
    assert failures({**PAIR, "network": "nope"})["network"] == "unknown network `nope` (the reservation's experiment networks: experiment)"
    assert "never shaped" in failures({**PAIR, "network": "_ssh"})["network"]
    assert "unknown network `x`" in failures({**STAR, "hosts": [{**STAR["hosts"][0], "network": "x"}]})["hosts[0].network"]
    assert failures({"inventory": INV, "defaultDelay": "5ms", "groups": ["servr"]})["groups"] == (
        "unknown role `servr` (the reservation's roles: client, server)"
    )
    assert "unknown role `x`" in failures({"inventory": INV, "defaultDelay": "5ms", "except": ["x"]})["except"]
    twice = {**STAR, "hosts": [STAR["hosts"][0], {"on": "all", "loss": "1%"}]}
    assert failures(twice)["hosts[1].on"] == "host server-1 is matched by hosts[0] too (on `experiment`)"
    conflict = {**PAIR, "constraints": [PAIR["constraints"][0], {"src": "all", "dst": "server", "delay": "5ms"}]}
    assert failures(conflict)["constraints[1]"] == "conflicts with constraints[0] from client-1 to server-1 on `experiment`"
    alone = {**PAIR, "constraints": [{"src": "server", "dst": "server", "delay": "5ms"}]}
    assert "share no host pair" in failures(alone)["constraints[0]"]
    # The first preview: patterns judged against the hosts the Reservation's inputs describe.
    planned = {"r": PlannedHosts((("server-1", ("server",)), ("client-1", ("client",))))}
    unknown = {**PAIR, "inventory": UNKNOWN, "constraints": [{"src": "clent", "dst": "server", "rate": "1mbit"}]}
    assert "unknown role or host `clent`" in failures(unknown, planned)["constraints[0].src"]


def test_pairwise_commands():
    plan = plan_of({**PAIR, "constraints": [{**PAIR["constraints"][0], "loss": "0.1%", "jitter": "5ms"}]})
    assert list(plan.hosts) == ["client-1"]  # only the sender shapes
    assert tc.host_commands(plan.hosts["client-1"]) == [
        f"{TC} qdisc add dev eth1 root handle 1: htb default 1",
        f"{TC} class add dev eth1 parent 1: classid 1:1 htb rate 100gbit",
        f"{TC} class add dev eth1 parent 1: classid 1:2 htb rate 100mbit",
        f"{TC} qdisc add dev eth1 parent 1:2 handle 12: netem delay 50ms 5ms loss 0.1%",
        f"{TC} filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dst 198.18.0.1/32 flowid 1:2",
    ]
    assert plan.hosts["client-1"].needs() == {"htb", "netem", "u32"}
    # symmetric: the same constraint from the receivers back; rate-only needs no netem.
    plan = plan_of({**PAIR, "constraints": [{"src": "client", "dst": "server", "rate": "20mbit", "symmetric": True}]})
    assert tc.host_commands(plan.hosts["server-1"])[2:] == [
        f"{TC} class add dev eth1 parent 1: classid 1:2 htb rate 20mbit",
        f"{TC} filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dst 198.18.0.2/32 flowid 1:2",
    ]
    assert plan.hosts["server-1"].needs() == {"htb", "u32"}
    assert [(p.src, p.dst, p.address) for p in plan.pairs] == [
        ("server-1", "client-1", "198.18.0.2"),
        ("client-1", "server-1", "198.18.0.1"),
    ]


def test_groups_defaults_and_overrides():
    inv = copy.deepcopy(INV)
    inv["hosts"].append({**copy.deepcopy(inv["hosts"][1]), "name": "client-2", "address": "198.19.0.3"})
    inv["hosts"][2]["networks"] = [{"id": "experiment", "address": "198.18.0.3", "interface": "eth1", "cidr": "198.18.0.0/24"}]
    inv["groups"]["client"] = ["client-1", "client-2"]
    inv["ssh"]["knownHosts"] += "client-2,198.19.0.3 ssh-ed25519 AAAAc2\n"
    plan = plan_of({"inventory": inv, "defaultDelay": "10ms", "constraints": [{"src": "client-2", "dst": "server", "delay": "30ms"}]})
    server = plan.hosts["server-1"].devices[0]
    assert [(r.to_hosts, r.shape.delay) for r in server.rules] == [(("client-1",), "10ms"), (("client-2",), "10ms")]
    assert [(r.to_hosts, r.shape.delay) for r in plan.hosts["client-2"].devices[0].rules] == [(("server-1",), "30ms")]
    assert not any(r.to_hosts == ("client-1",) for r in plan.hosts["client-2"].devices[0].rules)  # same group: unconstrained
    pair = next(p for p in plan.pairs if (p.src, p.dst) == ("client-2", "server-1"))
    assert expected(plan, pair, None) == (40.0, 0.0)  # 30 ms there, the default 10 ms back
    assert plan_of({"inventory": inv, "defaultRate": "1gbit", "except": ["client"]}).hosts == {}  # one group left: nothing


def test_star_symmetric_goes_through_an_ifb():
    plan = plan_of({**STAR, "hosts": [{**STAR["hosts"][0], "loss": "1%", "symmetric": True}]})
    host = plan.hosts["server-1"]
    assert tc.host_commands(host) == [
        f"{TC} qdisc add dev eth1 root handle 1: htb default 1",
        f"{TC} class add dev eth1 parent 1: classid 1:1 htb rate 1gbit",
        f"{TC} qdisc add dev eth1 parent 1:1 handle 11: netem delay 10ms loss 1% limit 1666",
        f"{IP} link add tbifb0 type ifb",
        f"{IP} link set dev tbifb0 up",
        f"{TC} qdisc add dev eth1 handle ffff: ingress",
        f"{TC} filter add dev eth1 parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev tbifb0",
        f"{TC} qdisc add dev tbifb0 root handle 1: htb default 1",
        f"{TC} class add dev tbifb0 parent 1: classid 1:1 htb rate 1gbit",
        f"{TC} qdisc add dev tbifb0 parent 1:1 handle 11: netem delay 10ms loss 1% limit 1666",
    ]
    assert host.needs() == {"htb", "netem", "u32", "ifb", "mirred"}
    assert tc.Applied.of(host) == tc.Applied(("eth1", "tbifb0"), ("eth1",), ("tbifb0",))
    pair = Pair("server-1", "client-1", "experiment", "198.18.0.2")
    assert expected(plan, pair, None) == (20.0, 1.99)  # 10 ms out of the server, 10 ms into it; 1 % each way
    out = applied_output(host)
    assert [(d["device"], d["direction"], d.get("via")) for d in out["devices"]] == [
        ("eth1", "egress", None),
        ("eth1", "ingress", "tbifb0"),
    ]
    assert out["summary"] == ["eth1: rate 1gbit, delay 10ms, loss 1%", "eth1 (in, via tbifb0): rate 1gbit, delay 10ms, loss 1%"]


def test_ipv6_filters():
    inv = copy.deepcopy(INV)
    for h, a in zip(inv["hosts"], ("fd00::1", "fd00::2")):
        h["networks"][0]["address"] = a
    plan = plan_of({**PAIR, "inventory": inv})
    assert tc.host_commands(plan.hosts["client-1"])[-1] == (
        f"{TC} filter add dev eth1 parent 1: protocol ipv6 prio 2 u32 match ip6 dst fd00::1/128 flowid 1:2"
    )


def test_accurate_subtracts_half_the_base_round_trip():
    news = {**PAIR, "accurate": True}
    plan = plan_of(news)
    assert [(p.src, p.address) for p in plan.base_needed] == [("client-1", "198.18.0.1")]
    plan = plan_of(news, {"client-1>198.18.0.1": 0.25})
    assert plan.base_needed == [] and "netem delay 49875us" in tc.host_commands(plan.hosts["client-1"])[3]
    pair = Pair("client-1", "server-1", "experiment", "198.18.0.1")
    assert expected(plan, pair, 0.25) == (50.125, 0.0)  # the asked 50 ms there, the base half back
    assert tc.us_text(49875) == "49875us" and tc.us_text(50000) == "50ms"


def test_netem_queue_holds_a_fast_long_path():
    assert tc.netem_options(tc.Shape(delay="1ms")) == "delay 1ms limit 1666"
    assert tc.netem_options(tc.Shape(rate="10mbit", delay="10ms")) == "delay 10ms"  # 8 packets in flight: the default 1000 will do
    assert tc.netem_options(tc.Shape(loss="5%")) == "loss 5%"


def deployed(news):
    plan = plan_of(news)
    return {**news, "deployed": {"hosts": {h: _record(plan, h) for h in plan.hosts}}}


def test_what_an_update_changes():
    diff = controller().diff
    outputs = deployed(PAIR)
    assert diff(outputs, PAIR, PAIR).detailed == {}  # an unchanged program applies nothing
    faster = {**PAIR, "constraints": [{**PAIR["constraints"][0], "rate": "1gbit"}]}
    assert diff(outputs, PAIR, faster).detailed == {"constraints[0].rate": Kind.UPDATE, "applied": Kind.UPDATE}
    assert diff(outputs, PAIR, {**PAIR, "triggers": [1]}).detailed == {"triggers": Kind.ADD}  # measures again only
    same = {**PAIR, "constraints": [{**PAIR["constraints"][0], "src": "client-1"}]}  # another spelling, the same hosts
    assert diff(outputs, PAIR, same).detailed == {"constraints[0].src": Kind.UPDATE}
    moved = copy.deepcopy(PAIR)
    moved["inventory"]["hosts"][1]["address"] = "198.19.0.9"  # a new machine behind client-1
    assert diff(outputs, PAIR, moved).detailed == {"applied": Kind.UPDATE}
    assert "applied" in diff(outputs, PAIR, {**PAIR, "inventory": UNKNOWN}).detailed
    assert not diff(outputs, PAIR, faster).replaces  # everything converges in place


def test_apply_script_replaces_only_its_own():
    plan = plan_of(PAIR)
    first = tc.apply_script(plan.hosts["client-1"])
    assert "already has a root qdisc ($h) this resource did not create" in first and f"exit {tc.REFUSED}" in first
    again = tc.apply_script(plan.hosts["client-1"], tc.Applied.of(plan.hosts["client-1"]))
    assert "did not create" not in again  # its own root qdisc: removed, then added again
    assert f"if {TC} qdisc show dev eth1 root 2>/dev/null | grep -q ' 1: root'; then {TC} qdisc del dev eth1 root; fi" in again
    assert again.count("run /sbin/tc") == 5
    assert tc.remove_script(tc.Applied(("eth1", "tbifb0"), ("eth1",), ("tbifb0",))).splitlines() == [
        "set -u",
        f"if {IP} link show dev tbifb0 >/dev/null 2>&1; then {IP} link del dev tbifb0; fi",
        f"if {TC} qdisc show dev eth1 ingress 2>/dev/null | grep -q .; then {TC} qdisc del dev eth1 ingress; fi",
        f"if {TC} qdisc show dev eth1 root 2>/dev/null | grep -q ' 1: root'; then {TC} qdisc del dev eth1 root; fi",
        f"if {TC} qdisc show dev tbifb0 root 2>/dev/null | grep -q ' 1: root'; then {TC} qdisc del dev tbifb0 root; fi",
        "echo removed",
    ]


def test_probe_verdict():
    assert "netem delay 1ms" not in tc.probe_script({"htb", "u32"})
    assert "netem delay 1ms" in tc.probe_script({"htb", "netem"})
    p = tc.parse_probe("boot_id fa33\nmissing netem\nmissing u32\n")
    assert p == tc.Probe(("netem", "u32"), "fa33")
    assert tc.missing_phrase(p.missing) == "no netem qdisc (sch_netem) and no tc classifier u32 (cls_u32)"


# Captured on this machine (Debian 12's fping 5.1 and iputils-ping 20221126): fping -C 4 -q to a
# local address and an unanswered one of a namespace's subnet; fping and ping to 127.0.0.1.
FPING_LOSS = "127.0.0.1 : 0.055 0.030 0.024 0.026\n10.9.0.3  : - - - -\n"
FPING_LO = "127.0.0.1 : 0.021 0.032 0.032\n::1       : 0.060 0.043 0.049\n"
PING = """== 127.0.0.1
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 405ms
rtt min/avg/max/mdev = 0.024/0.029/0.037/0.005 ms
== 10.9.0.3
PING 10.9.0.3 (10.9.0.3) 56(84) bytes of data.

--- 10.9.0.3 ping statistics ---
2 packets transmitted, 0 received, 100% packet loss, time 203ms
"""
BUSYBOX_PING = """== 127.0.0.1
PING 127.0.0.1 (127.0.0.1): 56 data bytes

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 packets received, 0% packet loss
round-trip min/avg/max = 0.041/0.048/0.056 ms
"""


def test_fping_and_ping_reports():
    rtts = tc.parse_fping(FPING_LOSS)
    assert rtts["127.0.0.1"] == tc.Rtt("127.0.0.1", 4, 4, 0.024, 0.034, 0.055)
    assert rtts["10.9.0.3"] == tc.Rtt("10.9.0.3", 4, 0) and rtts["10.9.0.3"].loss_percent == 100.0
    assert tc.parse_fping(FPING_LO)["::1"].avg_ms == 0.051
    ping = tc.parse_ping(PING)
    assert ping["127.0.0.1"] == tc.Rtt("127.0.0.1", 3, 3, 0.024, 0.029, 0.037)
    assert ping["10.9.0.3"] == tc.Rtt("10.9.0.3", 2, 0)
    assert tc.parse_ping(BUSYBOX_PING)["127.0.0.1"] == tc.Rtt("127.0.0.1", 3, 3, 0.041, 0.048, 0.056)
    assert tc.parse_measure("tool fping\n" + FPING_LO)[0] == "fping"
    assert tc.parse_measure("tool ping\n" + PING)[1]["127.0.0.1"].received == 3


@pytest.mark.parametrize("tool", ["fping", "ping"])
def test_measure_script_here(tool, tmp_path):
    """The measuring script run for real against 127.0.0.1, with only `tool` on its PATH."""
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed here (Debian: fping, iputils-ping)")
    (tmp_path / tool).symlink_to(found)
    env = {"PATH": f"{tmp_path}:/nonexistent"}
    proc = subprocess.run(["/bin/sh", "-c", tc.measure_script(["127.0.0.1"], count=3)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    used, rtts = tc.parse_measure(proc.stdout)
    assert used == tool and rtts["127.0.0.1"].sent == 3 and rtts["127.0.0.1"].received == 3, proc.stdout
    assert rtts["127.0.0.1"].avg_ms is not None
