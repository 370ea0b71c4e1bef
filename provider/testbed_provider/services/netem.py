"""What the Netem resource runs on its hosts: the tc scripts that apply and remove the constraints,
the capability probe that runs before them, and the fping/ping measurements (with their parsing).

Pure functions of a plan (which device of which host sends what to whom, how slowed): the
resource turns its inputs and the inventory into `HostPlan`s, and each host gets one shell
script (one run_shell per host). iproute2's tc and ip are called by path (busybox's tc cannot do
netem, and a busybox shell prefers its own applet).

Per shaped device (EnOSlib's NetemHTB layout, classes in hex):
    tc qdisc add dev D root handle 1: htb default 1
    tc class add dev D parent 1: classid 1:1 htb rate <line rate>          # unconstrained destinations
    tc class add dev D parent 1: classid 1:2 htb rate 100mbit             # one class per destination host
    tc qdisc add dev D parent 1:2 handle 12: netem delay 10ms loss 1%     # only when delay/jitter/loss
    tc filter add dev D parent 1: protocol ip prio 1 u32 match ip dst 198.18.0.2/32 flowid 1:2
A device's incoming traffic (the per-host model's `symmetric`) goes through an ifb device that is
shaped the same way: ingress qdisc on D, a u32 filter redirecting everything (mirred) to the ifb.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Optional, Sequence

TC = "/sbin/tc"
IP = "/sbin/ip"
HANDLE = "1:"  # the root htb of a shaped device
DEFAULT_CLASS = 1
LINE_RATE = "100gbit"  # the rate of classes without a rate (htb needs one): above any NIC's
IFB_PREFIX = "tbifb"  # our ifb devices: tbifb0, tbifb1… (the kernel's own are ifb0, ifb1)
PROBE_DEVICE = "tbprobe0"
NOT_APPLIED = 3  # the apply script's exit status when a command failed (what it added is removed)
REFUSED = 4  # … when a device holds a qdisc the resource did not create (nothing was changed)

TIME = r"[0-9]+(\.[0-9]+)?(us|ms|s)"
RATE = r"(?i:[0-9]+(\.[0-9]+)?[kmgt]?bit)"
LOSS = r"[0-9]+(\.[0-9]+)?%"
_TIME_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}
_RATE_BIT = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def time_us(text: str) -> float:
    """`50ms` → 50000.0 (microseconds)."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s)", text.strip())
    if not m:
        raise ValueError(f"not a time: {text!r}")
    return float(m.group(1)) * _TIME_US[m.group(2)]


def rate_bits(text: str) -> float:
    """`100mbit` → 1e8 (bits per second)."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([kmgt]?)bit", text.strip().lower())
    if not m:
        raise ValueError(f"not a rate: {text!r}")
    return float(m.group(1)) * _RATE_BIT[m.group(2)]


def loss_percent(text: str) -> float:
    return float(text.strip().rstrip("%"))


def us_text(us: float) -> str:
    """Microseconds as tc reads them: `49875us`, `50ms` when whole."""
    if us >= 1000 and float(us / 1000).is_integer():
        return f"{int(us // 1000)}ms"
    return f"{round(us)}us"


@dataclass(frozen=True)
class Shape:
    """What one class does: its rate (None: line rate) and netem's delay, jitter and loss."""

    rate: Optional[str] = None
    delay: Optional[str] = None
    jitter: Optional[str] = None
    loss: Optional[str] = None

    @property
    def needs_netem(self) -> bool:
        return bool(self.delay or self.jitter or self.loss)

    @property
    def delay_us(self) -> float:
        return time_us(self.delay) if self.delay else 0.0

    def summary(self) -> str:
        parts = [f"rate {self.rate}" if self.rate else ""]
        if self.delay:
            parts.append(f"delay {self.delay}" + (f" ± {self.jitter}" if self.jitter else ""))
        if self.loss:
            parts.append(f"loss {self.loss}")
        return ", ".join(p for p in parts if p) or "line rate"


@dataclass(frozen=True)
class Rule:
    """Traffic to these addresses (of these hosts) goes through its own class shaped by `shape`."""

    to_hosts: tuple[str, ...]
    addresses: tuple[str, ...]
    shape: Shape


@dataclass(frozen=True)
class Device:
    """One shaped device: `name` (egress), or the incoming traffic of `name` through the ifb `via`."""

    name: str
    network: str
    default: Shape = field(default_factory=Shape)  # what unmatched destinations get
    rules: tuple[Rule, ...] = ()
    via: Optional[str] = None  # an ifb device: this shapes what `name` receives

    @property
    def shaped(self) -> str:
        return self.via or self.name

    @property
    def direction(self) -> str:
        return "ingress" if self.via else "egress"


@dataclass(frozen=True)
class HostPlan:
    host: str
    devices: tuple[Device, ...]

    @property
    def ifbs(self) -> tuple[str, ...]:
        return tuple(d.via for d in self.devices if d.via)

    @property
    def ingress(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices if d.via)

    def needs(self) -> set[str]:
        """The kernel features this host's constraints use: netem, u32, ifb, mirred (and htb)."""
        out = {"htb"}
        for d in self.devices:
            if d.default.needs_netem or any(r.shape.needs_netem for r in d.rules):
                out.add("netem")
            if d.rules:
                out.add("u32")
            if d.via:
                out |= {"ifb", "u32", "mirred"}
        return out


def _q(word: str) -> str:
    return shlex.quote(word)


def netem_options(shape: Shape, rate: Optional[str] = None) -> str:
    """netem's options: `delay 10ms 2ms loss 1%`, with a queue `limit` above the path's
    bandwidth-delay product (netem's default of 1000 packets drops packets of a fast, long path:
    EnOSlib's silent loss)."""
    words = []
    if shape.delay or shape.jitter:
        words += ["delay", shape.delay or "0ms"] + ([shape.jitter] if shape.jitter else [])
    if shape.loss:
        words += ["loss", shape.loss]
    wait_s = (shape.delay_us + (time_us(shape.jitter) if shape.jitter else 0)) / 1e6
    bdp_packets = int(rate_bits(rate or shape.rate or "10gbit") * wait_s / (1500 * 8)) * 2
    if bdp_packets > 1000:
        words += ["limit", str(min(bdp_packets, 1_000_000))]
    return " ".join(words)


def device_commands(d: Device) -> list[str]:
    """The tc/ip commands shaping one device, in order (what the apply script runs)."""
    dev = _q(d.shaped)
    out: list[str] = []
    if d.via:
        out += [
            f"{IP} link add {_q(d.via)} type ifb",
            f"{IP} link set dev {_q(d.via)} up",
            f"{TC} qdisc add dev {_q(d.name)} handle ffff: ingress",
            f"{TC} filter add dev {_q(d.name)} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev {_q(d.via)}",
        ]
    out.append(f"{TC} qdisc add dev {dev} root handle {HANDLE} htb default {DEFAULT_CLASS:x}")
    classes = [(DEFAULT_CLASS, d.default, ())] + [(k, r.shape, r.addresses) for k, r in enumerate(d.rules, DEFAULT_CLASS + 1)]
    for k, shape, addresses in classes:
        rate = shape.rate.lower() if shape.rate else LINE_RATE
        out.append(f"{TC} class add dev {dev} parent {HANDLE} classid 1:{k:x} htb rate {rate}")
        if shape.needs_netem:
            out.append(f"{TC} qdisc add dev {dev} parent 1:{k:x} handle {k + 0x10:x}: netem {netem_options(shape, shape.rate)}")
        for a in addresses:
            if ":" in a:
                out.append(f"{TC} filter add dev {dev} parent {HANDLE} protocol ipv6 prio 2 u32 match ip6 dst {a}/128 flowid 1:{k:x}")
            else:
                out.append(f"{TC} filter add dev {dev} parent {HANDLE} protocol ip prio 1 u32 match ip dst {a}/32 flowid 1:{k:x}")
    return out


def host_commands(plan: HostPlan) -> list[str]:
    return [c for d in plan.devices for c in device_commands(d)]


def teardown_commands(devices: Sequence[str], ingress: Sequence[str], ifbs: Sequence[str]) -> list[str]:
    """Remove exactly these: the root qdisc of `devices` (ours: recorded), the ingress qdisc of
    `ingress`, the ifb devices `ifbs`; each only where it is still there."""
    out = []
    for i in ifbs:
        out.append(f"if {IP} link show dev {_q(i)} >/dev/null 2>&1; then {IP} link del dev {_q(i)}; fi")
    for d in ingress:
        out.append(f"if {TC} qdisc show dev {_q(d)} ingress 2>/dev/null | grep -q .; then {TC} qdisc del dev {_q(d)} ingress; fi")
    for d in devices:
        out.append(f"if {TC} qdisc show dev {_q(d)} root 2>/dev/null | grep -q ' {HANDLE} root'; then {TC} qdisc del dev {_q(d)} root; fi")
    return out


@dataclass(frozen=True)
class Applied:
    """What the resource created on one host (recorded in state; destroy removes exactly this)."""

    devices: tuple[str, ...]  # root qdiscs (the ifbs' included)
    ingress: tuple[str, ...]  # ingress qdiscs
    ifbs: tuple[str, ...]

    @staticmethod
    def of(plan: HostPlan) -> "Applied":
        return Applied(tuple(d.shaped for d in plan.devices), plan.ingress, plan.ifbs)


def apply_script(plan: HostPlan, previous: Optional[Applied] = None) -> str:
    """One host's script: refuse devices holding qdiscs the resource did not create (`previous`
    records what it did), remove the previous constraints, then run every command; a failing
    command removes what this run added and exits NOT_APPLIED with the command and tc's words."""
    mine = previous or Applied((), (), ())
    new = Applied.of(plan)
    guards = []
    for d in plan.devices:
        if d.name not in mine.devices and not d.via:
            guards.append(
                f"h=$({TC} qdisc show dev {_q(d.name)} root | awk 'NR==1{{print $2\" \"$3}}'); "
                f'case "$h" in *" 0:"|"") ;; *) echo "{d.name} already has a root qdisc ($h) this resource did not create" >&2; refused=1;; esac'
            )
        if d.via and d.name not in mine.ingress:
            guards.append(
                f"if {TC} qdisc show dev {_q(d.name)} ingress | grep -q .; then "
                f'echo "{d.name} already has an ingress qdisc this resource did not create" >&2; refused=1; fi'
            )
        if d.via and d.via not in mine.ifbs:
            guards.append(
                f'if {IP} link show dev {_q(d.via)} >/dev/null 2>&1; then echo "a device {d.via} exists that this resource did not create" >&2; refused=1; fi'
            )
    undo_new = teardown_commands(new.devices, new.ingress, new.ifbs)
    lines = [
        "set -u",
        f"[ -x {TC} ] || {{ echo 'no {TC} (iproute2) on this host' >&2; exit {NOT_APPLIED}; }}",
        "refused=0",
        *guards,
        f'[ "$refused" = 0 ] || exit {REFUSED}',
        *teardown_commands(mine.devices, mine.ingress, mine.ifbs),
        "undo() {",
        *([f"  {c}" for c in undo_new] or ["  :"]),
        "}",
        "run() {",
        '  out=$("$@" 2>&1) || { echo "failed: $*: $out" >&2; undo; exit ' + str(NOT_APPLIED) + "; }",
        "}",
    ]
    for c in host_commands(plan):
        lines.append(f"run {c}")
    lines.append(f"echo applied {len(host_commands(plan))}")
    return "\n".join(lines) + "\n"


def remove_script(applied: Applied) -> str:
    return "\n".join(["set -u", *teardown_commands(applied.devices, applied.ingress, applied.ifbs), "echo removed"]) + "\n"


# ---- the capability probe --------------------------------------------------------------------

FEATURES = {
    "htb": "no htb qdisc (sch_htb)",
    "netem": "no netem qdisc (sch_netem)",
    "u32": "no tc classifier u32 (cls_u32)",
    "ifb": "no ifb devices (ifb)",
    "mirred": "no tc action mirred (act_mirred)",
}


def probe_script(needs: set[str]) -> str:
    """Try each feature on a throwaway ifb (or veth) device, print `missing <feature>` for each
    that fails, and `boot_id <id>` (a namespace host shares its machine's kernel, hence its boot
    id). The device is removed whatever happens; nothing else is touched."""
    p = PROBE_DEVICE
    lines = [
        "set -u",
        f"[ -x {TC} ] || {{ echo 'missing tc'; }}",
        f"{TC} -V 2>&1 | grep -q iproute2 || echo 'missing iproute2-tc'",
        "echo boot_id $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)",
        f"cleanup() {{ {IP} link del dev {p} >/dev/null 2>&1; {IP} link del dev {p}p >/dev/null 2>&1; }}",
        "trap cleanup EXIT",
        "cleanup",
        f"if {IP} link add {p} type ifb 2>/dev/null; then ifb=1; else ifb=0; "
        f"{IP} link add {p} type veth peer name {p}p 2>/dev/null || {{ echo 'missing probe-device'; exit 0; }}; fi",
        f"{IP} link set dev {p} up",
        'try() { what=$1; shift; "$@" >/dev/null 2>&1 || echo "missing $what"; }',
        f"try htb {TC} qdisc add dev {p} root handle 1: htb default 1",
        f"try htb {TC} class add dev {p} parent 1: classid 1:1 htb rate 1mbit",
    ]
    if "netem" in needs:
        lines.append(f"try netem {TC} qdisc add dev {p} parent 1:1 handle 10: netem delay 1ms")
    if "u32" in needs:
        lines.append(f"try u32 {TC} filter add dev {p} parent 1: protocol ip prio 1 u32 match ip dst 127.0.0.1/32 flowid 1:1")
    if "ifb" in needs:
        lines.append('[ "$ifb" = 1 ] || echo "missing ifb"')
    if "mirred" in needs:
        lines += [
            f"{TC} qdisc add dev {p} handle ffff: ingress >/dev/null 2>&1",
            f"try mirred {TC} filter add dev {p} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev {p}",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Probe:
    missing: tuple[str, ...]
    boot_id: str


def parse_probe(stdout: str) -> Probe:
    missing, boot = [], ""
    for line in stdout.splitlines():
        if line.startswith("missing "):
            missing.append(line.split(" ", 1)[1].strip())
        elif line.startswith("boot_id"):
            boot = line[len("boot_id") :].strip()
    return Probe(tuple(dict.fromkeys(missing)), boot)


def missing_phrase(missing: Sequence[str]) -> str:
    """`no netem qdisc (sch_netem) and no tc classifier u32 (cls_u32)`."""
    words = {
        "tc": f"no {TC}",
        "iproute2-tc": f"{TC} is not iproute2's (busybox's cannot do netem)",
        "probe-device": "no way to create a test device (ifb or veth) to probe tc on",
        **FEATURES,
    }
    parts = [words.get(m, f"no {m}") for m in missing]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# ---- measuring: fping, else ping -------------------------------------------------------------

PINGS = 10  # echo requests per destination
PERIOD_MS = 100  # between two requests to one destination


def measure_script(addresses: Sequence[str], count: int = PINGS) -> str:
    """Round trips to each address: `fping -C count -q` (Debian's fping) when the host has it,
    else iputils' or busybox's `ping` one address at a time. Prints `tool <name>`, then the
    tool's own report (fping's per-address line, ping's summary after `== <address>`)."""
    targets = " ".join(_q(a) for a in addresses)
    return f"""set -u
if command -v fping >/dev/null 2>&1; then
  echo tool fping
  fping -C {count} -q -p {PERIOD_MS} -t 1000 {targets} 2>&1
  rc=$?; [ "$rc" -le 1 ] || exit "$rc"
elif command -v ping >/dev/null 2>&1; then
  echo tool ping
  for a in {targets}; do echo "== $a"; ping -n -q -c {count} -i 0.2 -W 1 "$a" 2>&1; done
else
  echo 'neither fping nor ping on this host (Debian: apt-get install fping)' >&2; exit 1
fi
exit 0
"""


@dataclass(frozen=True)
class Rtt:
    """One destination's round trips: requests sent, replies, and their times in ms."""

    address: str
    sent: int
    received: int
    min_ms: Optional[float] = None
    avg_ms: Optional[float] = None
    max_ms: Optional[float] = None

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0


def parse_fping(text: str) -> dict[str, Rtt]:
    """fping -C's report: `198.18.0.2 : 0.12 0.05 - 0.04` (one time per request, `-` lost)."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+)\s+:\s+((?:(?:[0-9.]+|-)\s*)+)$", line.strip())
        if not m:
            continue
        words = m.group(2).split()
        times = [float(w) for w in words if w != "-"]
        out[m.group(1)] = Rtt(
            m.group(1),
            len(words),
            len(times),
            min(times) if times else None,
            round(sum(times) / len(times), 3) if times else None,
            max(times) if times else None,
        )
    return out


def parse_ping(text: str) -> dict[str, Rtt]:
    """`== <address>` then ping's summary: `N packets transmitted, M received`, and iputils'
    `rtt min/avg/max/mdev = a/b/c/d ms` or busybox's `round-trip min/avg/max = a/b/c ms`."""
    out: dict[str, Rtt] = {}
    for block in re.split(r"^== ", text, flags=re.M)[1:]:
        address = block.split(None, 1)[0]
        counts = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", block)
        times = re.search(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = ([0-9.]+)/([0-9.]+)/([0-9.]+)", block)
        sent, received = (int(counts.group(1)), int(counts.group(2))) if counts else (0, 0)
        if times:
            out[address] = Rtt(address, sent, received, *(float(times.group(i)) for i in (1, 2, 3)))
        else:
            out[address] = Rtt(address, sent, received)
    return out


def parse_measure(stdout: str) -> tuple[str, dict[str, Rtt]]:
    """(the tool used, address → its round trips) of measure_script's output."""
    first, _, rest = stdout.partition("\n")
    tool = first.split(" ", 1)[1].strip() if first.startswith("tool ") else ""
    return tool, parse_fping(rest) if tool == "fping" else parse_ping(rest)
