"""Netem end to end: the real engine on the local testbed (tests/e2e/projects/netem).

What runs here, honestly: this machine's kernel (which the namespace hosts share) has htb, tbf
and pfifo qdiscs, the u32 classifier, the mirred action and ifb devices, but no netem qdisc. So
  - a delay (netem) fails at `pulumi up` naming each host and suggesting `kind: vm` machines,
    with nothing applied anywhere and no Netem in the stack; a preview applies nothing;
  - rate-only constraints (htb classes, u32 filters, ifb for ingress) are applied for real: the
    test reads the hosts' qdiscs, classes and filters back, sees fping's echo requests counted in
    the constrained class, updates them in place, and removes them (nothing left on the hosts);
  - a root qdisc the resource did not create makes it fail naming the host, and stays.
Delay, jitter and loss themselves (netem) wait for VM hosts; their commands are unit-tested.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..helpers import IS_ROOT
from .stack import Stack
from .test_monitoring import on_host


@pytest.fixture
def net(tmp_path):
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    s = Stack(tmp_path, example="netem", config={"testbed:backend": "local", "netem": "false"})
    s.env["PULUMI_TESTBED_CACHE"] = str(tmp_path / "c")
    yield s
    s.destroy()


def traffic_control(stack: Stack) -> dict[str, dict[str, Any]]:
    """Host → its qdiscs, classes, eth1's filters (tc's JSON) and its links' names."""
    script = (
        "/sbin/tc -j qdisc show; echo; echo @@; /sbin/tc -s class show dev eth1; echo; echo @@; "
        "/sbin/tc -j filter show dev eth1; echo; echo @@; /sbin/ip -j link show"
    )
    out = {}
    for host, text in on_host(stack, "all", script).items():
        qdiscs, classes, filters, links = text.split("@@")
        qdiscs, filters, links = (json.loads(part.strip() or "[]") for part in (qdiscs, filters, links))
        classes = parse_classes(classes)
        out[host] = {"qdiscs": qdiscs, "classes": classes, "filters": filters, "links": [link["ifname"] for link in links]}
    return out


def parse_classes(text: str) -> list[dict[str, Any]]:
    """`tc -s class show`'s text (iproute2 6.1 prints no JSON for htb classes): kind, handle, rate, packets."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["class"]:
            out.append({"class": words[1], "handle": words[2], "rate": words[words.index("rate") + 1] if "rate" in words else None})
        elif words[:1] == ["Sent"] and out:
            out[-1]["packets"] = int(words[3])
    return out


def assert_untouched(state: dict[str, Any]) -> None:
    """No qdisc but the kernel's defaults, no class, no ifb or probe device."""
    for host, tcs in state.items():
        assert all(q["handle"] == "0:" for q in tcs["qdiscs"]), (host, tcs["qdiscs"])
        assert tcs["classes"] == [] and tcs["filters"] == [], (host, tcs)
        assert not [n for n in tcs["links"] if n.startswith(("tbifb", "tbprobe"))], (host, tcs["links"])


def netem_in_state(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.resources() if r["type"] == "testbed:services:Netem"]


def test_netem_without_the_kernel_module_fails_naming_the_hosts_and_leaves_nothing(net):
    net.up()  # the reservation alone
    net.run("config", "set", "netem", "true")
    net.run("config", "set", "delay", "20ms")
    net.run("config", "set", "symmetric", "true")  # both hosts shape: both are named
    assert net.preview_ops() == {"netem": "create"}
    assert_untouched(traffic_control(net))  # the preview applied nothing

    proc = net.run("up", "--yes", "--skip-preview", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    for host in ("server-1", "client-1"):
        assert (
            f"{host}: this kernel has no netem qdisc (sch_netem); the local testbed's namespace hosts share this machine's kernel: use `kind: vm` machines"
            in text
        ), text
    assert "nothing was applied" in text
    assert_untouched(traffic_control(net))
    assert netem_in_state(net) == []  # not half-recorded


def rates(tcs: dict[str, Any]) -> dict[str, int]:
    """classid → rate (as tc prints it: `20Mbit`) of eth1's htb classes."""
    return {c["handle"]: c["rate"] for c in tcs["classes"] if c["class"] == "htb"}


def test_rate_constraints_apply_update_and_go(net):
    net.run("config", "set", "netem", "true")
    net.run("config", "set", "rate", "20mbit")
    net.up()
    out = net.outputs()
    client = out["applied"]["client-1"]
    assert list(out["applied"]) == ["client-1"]  # only the sender shapes
    server_address = next(n["address"] for h in out["hosts"] if h["name"] == "server-1" for n in h["networks"])
    assert client["summary"] == [f"eth1 → server-1 ({server_address}): rate 20mbit"]
    tcs = traffic_control(net)
    assert_untouched({"server-1": tcs["server-1"]})
    assert [(q["kind"], q["handle"]) for q in tcs["client-1"]["qdiscs"] if q["handle"] != "0:"] == [("htb", "1:")]
    assert rates(tcs["client-1"]) == {"1:1": "100Gbit", "1:2": "20Mbit"}
    [rule] = [f for f in tcs["client-1"]["filters"] if f.get("options", {}).get("flowid")]
    assert rule["options"]["flowid"] == "1:2"
    # Validation: fping from each constrained host to the other, beside what was asked.
    rows = {(r["src"], r["dst"]): r for r in out["validation"]}
    assert set(rows) == {("client-1", "server-1"), ("server-1", "client-1")}
    for r in rows.values():
        assert r["tool"] == "fping" and r["received"] == r["sent"] == 10 and r["expected_rtt_ms"] == 0, r
    # ... whose echo requests to the server went through the constrained class.
    counted = {c["handle"]: c["packets"] for c in tcs["client-1"]["classes"] if c["class"] == "htb"}
    assert counted["1:2"] >= 10, counted

    assert net.preview_ops() == {}  # an unchanged program applies nothing
    net.run("config", "set", "rate", "40mbit")
    assert net.preview_ops() == {"netem": "update"}
    net.up()
    assert rates(traffic_control(net)["client-1"])["1:2"] == "40Mbit"

    # The star model, symmetric: the server's interface out, and in through an ifb device.
    net.run("config", "set", "model", "star")
    net.run("config", "set", "symmetric", "true")
    net.up()
    tcs = traffic_control(net)
    assert_untouched({"client-1": tcs["client-1"]})  # the client's former constraint removed
    server = tcs["server-1"]
    assert sorted((q["kind"], q.get("parent", "root")) for q in server["qdiscs"] if q["handle"] != "0:") == [
        ("htb", "root"),
        ("htb", "root"),
        ("ingress", "ffff:fff1"),
    ]
    assert "tbifb0" in server["links"] and rates(server) == {"1:1": "40Mbit"}
    assert net.outputs()["applied"]["server-1"]["ifbs"] == ["tbifb0"]

    net.run("config", "set", "netem", "false")  # the Netem goes, the reservation stays
    net.up()
    assert_untouched(traffic_control(net))


def test_a_qdisc_it_did_not_create_is_refused_and_kept(net):
    net.run("config", "set", "netem", "true")
    net.run("config", "set", "foreign", "true")
    proc = net.run("up", "--yes", "--skip-preview", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "client-1" in text and "eth1 already has a root qdisc (tbf 5:) this resource did not create" in text, text
    assert netem_in_state(net) == []
    client = traffic_control(net)["client-1"]
    assert [(q["kind"], q["handle"]) for q in client["qdiscs"] if q["handle"] != "0:"] == [("tbf", "5:")]
