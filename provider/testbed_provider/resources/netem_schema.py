"""Typed definition of testbed:services:Netem: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..services.netem import LOSS, RATE, TIME
from ..typed.model import Resource, prop, schema_type
from .steps_schema import PATTERN, PATTERN_HINT, InventoryArgs

TIME_HINT = "a time such as `50ms`, `0.5ms`, `200us` or `1s`"
RATE_HINT = "a rate in bits per second such as `100mbit`, `1gbit`, `512kbit` (tc's units; not bytes)"
LOSS_HINT = "a percentage such as `0.1%` or `5%`"
NETWORK_HINT = "a network id of the Reservation (an experiment network)"


def _delay(what: str) -> Any:
    return prop(f"One-way delay {what} (netem).", pattern=TIME, hint=TIME_HINT)


def _jitter() -> Any:
    return prop("Delay variation around `delay` (netem's jitter; needs a `delay`).", pattern=TIME, hint=TIME_HINT)


def _rate(what: str) -> Any:
    return prop(f"Bandwidth {what} (an htb class).", pattern=RATE, hint=RATE_HINT)


def _loss(what: str) -> Any:
    return prop(f"Packet loss {what} (netem).", pattern=LOSS, hint=LOSS_HINT)


@schema_type(
    "testbed:services:NetemHostConstraint",
    "The per-host (star) model, EnOSlib's Netem: every matched host's interface is this far from the core.",
    label="a host constraint",
)
@dataclass(kw_only=True)
class NetemHostConstraint:
    on: str = prop("Host pattern over roles and host names (`server`, `client:!server`, `all`).", pattern=PATTERN, hint=PATTERN_HINT)
    delay: Optional[str] = _delay("of everything the host sends")
    jitter: Optional[str] = _jitter()
    rate: Optional[str] = _rate("of everything the host sends")
    loss: Optional[str] = _loss("of everything the host sends")
    symmetric: Optional[bool] = prop(
        "Shape what the host receives the same way (through an ifb device, EnOSlib's ingress constraint). Default false."
    )
    network: Optional[str] = prop("The network whose interface is shaped. Default: the resource's `network`.", hint=NETWORK_HINT)


@schema_type(
    "testbed:services:NetemConstraint",
    "One constraint of the per-group model (EnOSlib's NetemHTB): from the `src` hosts to the `dst` hosts.",
    label="a constraint",
)
@dataclass(kw_only=True)
class NetemConstraint:
    src: str = prop("Host pattern of the senders (a role such as `server`, or any pattern).", pattern=PATTERN, hint=PATTERN_HINT)
    dst: str = prop("Host pattern of the receivers.", pattern=PATTERN, hint=PATTERN_HINT)
    delay: Optional[str] = _delay("from each sender to each receiver")
    jitter: Optional[str] = _jitter()
    rate: Optional[str] = _rate("from each sender to each receiver (each pair its own)")
    loss: Optional[str] = _loss("from each sender to each receiver")
    symmetric: Optional[bool] = prop("The same constraint from the receivers back to the senders (EnOSlib's `symmetric`). Default false.")
    network: Optional[str] = prop("The network the constraint is on. Default: the resource's `network`.", hint=NETWORK_HINT)


@schema_type("testbed:services:NetemRule", "One class of a shaped device: traffic to these hosts, and what slows it.")
@dataclass(kw_only=True)
class NetemRule:
    classid: str = prop("The htb class (`1:2`; `1:1` is the device's default class).")
    to_hosts: list[str] = prop("Destination hosts (empty: every destination no other class matches).")
    addresses: list[str] = prop("Their addresses the filters match (u32 on the destination address).")
    rate: str = prop("The class's rate (`100gbit`: line rate, no shaping asked).")
    delay: Optional[str] = prop("netem's delay (as applied: with `accurate`, the asked delay less half the base round trip).")
    jitter: Optional[str] = prop("netem's jitter.")
    loss: Optional[str] = prop("netem's loss.")


@schema_type("testbed:services:NetemDevice", "One device a host shapes.")
@dataclass(kw_only=True)
class NetemDevice:
    device: str = prop("The host's interface.")
    network: str = prop("Its network.")
    direction: str = prop("`egress` (what the interface sends) or `ingress` (what it receives, shaped on the `via` ifb device).")
    via: Optional[str] = prop("The ifb device shaping the incoming traffic.")
    handle: str = prop("The root htb qdisc's handle (on `via` for ingress).")
    rules: list[NetemRule] = prop("Its classes.")


@schema_type("testbed:services:NetemHost", "What the resource applied on one host (and destroy removes).")
@dataclass(kw_only=True)
class NetemHost:
    devices: list[NetemDevice] = prop("Shaped devices.")
    ifbs: list[str] = prop("ifb devices it created.")
    commands: int = prop("tc/ip commands its script ran.")
    summary: list[str] = prop("One line per class: `eth1 → client-1 (198.18.0.2): rate 100mbit, delay 10ms`.")


@schema_type("testbed:services:NetemMeasurement", "A measured round trip between two constrained hosts, beside what was asked.")
@dataclass(kw_only=True)
class NetemMeasurement:
    src: str = prop("The host that pinged.")
    dst: str = prop("The host pinged.")
    network: str = prop("The network.")
    address: str = prop("The address pinged.")
    tool: str = prop("`fping` (Debian's `fping -C N -q`) or `ping`.")
    sent: int = prop("Echo requests sent.")
    received: int = prop("Replies.")
    loss_percent: float = prop("Measured loss, %.")
    rtt_min_ms: Optional[float] = prop("Fastest round trip, ms.")
    rtt_avg_ms: Optional[float] = prop("Mean round trip, ms.")
    rtt_max_ms: Optional[float] = prop("Slowest round trip, ms.")
    expected_rtt_ms: float = prop(
        "The round trip the constraints add (the delays both ways, ms); with `accurate`, the whole round trip asked."
    )
    expected_loss_percent: float = prop("The loss the constraints ask for, both ways combined, %.")
    base_rtt_ms: Optional[float] = prop("With `accurate`: the round trip measured before any constraint, ms.")
    error: Optional[str] = prop("Why nothing was measured, when nothing was.")


# testbed:services:Netem
@dataclass(kw_only=True)
class NetemArgs(InventoryArgs):
    network: Optional[str] = prop(
        "The network to shape: a network id of the Reservation. Default: every experiment network (each pair of hosts on "
        "each network they share; the network SSH uses is never shaped).",
        hint=NETWORK_HINT,
    )
    hosts: Optional[list[NetemHostConstraint]] = prop(
        "The per-host (star) model: each host's delay, rate and loss to the core, on what it sends (and, `symmetric`, "
        "receives). Exclusive with the per-group model's inputs.",
        min_items=1,
        noun="host constraint",
    )
    default_delay: Optional[str] = prop(
        "Per-group model: the one-way delay between hosts of different `groups` (EnOSlib's default_delay).", pattern=TIME, hint=TIME_HINT
    )
    default_jitter: Optional[str] = prop("Per-group model: the jitter of `defaultDelay`.", pattern=TIME, hint=TIME_HINT)
    default_rate: Optional[str] = prop("Per-group model: the rate between hosts of different `groups`.", pattern=RATE, hint=RATE_HINT)
    default_loss: Optional[str] = prop("Per-group model: the loss between hosts of different `groups`.", pattern=LOSS, hint=LOSS_HINT)
    groups: Optional[list[str]] = prop(
        "Per-group model: the roles the defaults apply between (default: every role). Exclusive with `except`.",
        min_items=1,
        noun="role",
    )
    except_: Optional[list[str]] = prop(
        "Per-group model: roles left out of the defaults (EnOSlib's `except`).", name="except", min_items=1, noun="role"
    )
    constraints: Optional[list[NetemConstraint]] = prop(
        "Per-group model: constraints between host patterns, overriding the defaults for their pairs."
    )
    accurate: Optional[bool] = prop(
        "Per-group model (EnOSlib's AccurateNetemHTB): measure each pair's round trip before constraining it and apply "
        "the asked delay less half of it, so the measured delay is the asked one. Default false."
    )
    validate: bool = prop(
        "Measure the round trips between the constrained hosts after applying (fping, else ping): the `validation` output.",
        default=True,
    )
    triggers: Optional[list[Any]] = prop("Any values: a change measures again (nothing is re-applied).")
    become: Optional[bool] = prop("Run tc as root through sudo when the login user is not root.")


@dataclass(kw_only=True)
class NetemState(NetemArgs):
    applied: dict[str, NetemHost] = prop("Per host what was applied: devices, classes, ifb devices.", output=True)
    validation: list[NetemMeasurement] = prop("The measured round-trip matrix, beside the asked values.", output=True)


NETEM = Resource(
    "testbed:services:Netem",
    "Network emulation (EnOSlib's Netem, NetemHTB and AccurateNetemHTB): delay, jitter, rate and loss between hosts, "
    "with tc on the hosts' experiment interfaces. Every matched host is probed first (netem, u32, ifb, mirred) and a "
    "missing kernel feature fails naming the host before anything is applied; each host's commands run as one script; "
    "state records what was created, so an update replaces exactly that and destroy removes exactly that (never a "
    "qdisc the resource did not create).",
    NetemArgs,
    NetemState,
    label="Netem",
    example="""import pulumi_testbed as testbed

netem = testbed.services.Netem(
    "netem",
    inventory=nodes.inventory,
    network="experiment",
    default_delay="20ms",
    default_rate="1gbit",
    constraints=[testbed.services.NetemConstraintArgs(src="client", dst="server", delay="50ms", rate="100mbit", symmetric=True)],
)
pulumi.export("rtt", netem.validation)
""",
)
