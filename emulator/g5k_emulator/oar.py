"""OAR: the resource-request language (`resources` string and SQL property filters) and the
placement of a request in time (earliest start where every resource is free for the walltime).

Hand-written because no maintained Python library parses OAR's `-l` syntax or its SQL-ish
property filters; the subset is what Grid'5000 users and EnOSlib send (the project's note §2.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

from .reference import DOMAIN, Node, Platform, g5ksubnet

Count = Union[int, str]  # a number, "ALL" or "BEST"
DEFAULT_WALLTIME = 3600


class RequestError(ValueError):
    """The request cannot be understood (a syntax error)."""


class NotEnoughResources(ValueError):
    """The request matches no existing resources, whatever the time."""


# ---- walltime ----------------------------------------------------------------------------------


def parse_walltime(text: Any) -> int:
    """`H`, `H:MM` or `H:MM:SS` (OAR's forms; a bare number is hours) → seconds."""
    if isinstance(text, bool):
        raise RequestError(f"bad walltime {text!r}")
    if isinstance(text, (int, float)):
        return int(text * 3600)
    m = re.fullmatch(r"\s*(\d+)(?::(\d+))?(?::(\d+))?\s*", str(text))
    if not m:
        raise RequestError(f"bad walltime {text!r}")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def format_walltime(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# ---- SQL property filters ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^']|'')*'|"[^"]*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<op><>|!=|<=|>=|=|<|>)
                       |(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_.\-]*))""",
    re.X,
)


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise RequestError(f"bad property filter near {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            tokens.append(("val", m.group("str")[1:-1].replace("''", "'")))
        elif m.group("num") is not None:
            tokens.append(("val", float(m.group("num"))))
        elif m.group("op"):
            tokens.append(("op", m.group("op")))
        elif m.group("punct"):
            tokens.append(("punct", m.group("punct")))
        else:
            word = m.group("word")
            kw = word.upper()
            tokens.append(("kw", kw) if kw in ("AND", "OR", "NOT", "IN", "LIKE") else ("id", word.lower()))
    return tokens


class Filter:
    """A parsed SQL `WHERE` expression evaluated against one resource's properties (a dict).

    A property the resource does not have raises UnknownProperty: OAR then finds no resource.
    """

    def __init__(self, text: str):
        self.text = text
        self._tokens = _tokenize(text)
        self._pos = 0
        self._tree = self._expr() if self._tokens else ("true",)
        if self._pos != len(self._tokens):
            raise RequestError(f"bad property filter {text!r}")

    # recursive descent over: expr := term (OR term)* ; term := factor (AND factor)* ; ...
    def _peek(self) -> Optional[tuple[str, Any]]:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, kind: str, value: Any = None) -> Any:
        tok = self._peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise RequestError(f"bad property filter {self.text!r}")
        self._pos += 1
        return tok[1]

    def _expr(self) -> tuple:
        node = self._term()
        while self._peek() == ("kw", "OR"):
            self._pos += 1
            node = ("or", node, self._term())
        return node

    def _term(self) -> tuple:
        node = self._factor()
        while self._peek() == ("kw", "AND"):
            self._pos += 1
            node = ("and", node, self._factor())
        return node

    def _factor(self) -> tuple:
        tok = self._peek()
        if tok == ("kw", "NOT"):
            self._pos += 1
            return ("not", self._factor())
        if tok == ("punct", "("):
            self._pos += 1
            inner = self._expr()
            self._take("punct", ")")
            return inner
        name = self._take("id")
        tok = self._peek()
        negate = False
        if tok == ("kw", "NOT"):
            self._pos += 1
            negate = True
            tok = self._peek()
        if tok == ("kw", "IN"):
            self._pos += 1
            self._take("punct", "(")
            values = [self._take("val")]
            while self._peek() == ("punct", ","):
                self._pos += 1
                values.append(self._take("val"))
            self._take("punct", ")")
            node: tuple = ("in", name, values)
        elif tok == ("kw", "LIKE"):
            self._pos += 1
            node = ("like", name, self._take("val"))
        else:
            node = ("cmp", name, self._take("op"), self._take("val"))
        return ("not", node) if negate else node

    def matches(self, props: dict[str, Any]) -> bool:
        return bool(self._eval(self._tree, props))

    def names(self) -> set[str]:
        found: set[str] = set()

        def walk(node: tuple) -> None:
            if node[0] in ("and", "or"):
                walk(node[1])
                walk(node[2])
            elif node[0] == "not":
                walk(node[1])
            elif node[0] in ("in", "like", "cmp"):
                found.add(node[1])

        walk(self._tree)
        return found

    def _eval(self, node: tuple, props: dict[str, Any]) -> bool:
        kind = node[0]
        if kind == "true":
            return True
        if kind == "and":
            return self._eval(node[1], props) and self._eval(node[2], props)
        if kind == "or":
            return self._eval(node[1], props) or self._eval(node[2], props)
        if kind == "not":
            return not self._eval(node[1], props)
        name = node[1]
        if name not in props:
            raise NotEnoughResources(name)
        value = props[name]
        if kind == "in":
            return any(_equal(value, v) for v in node[2])
        if kind == "like":
            pattern = "^" + re.escape(str(node[2])).replace("%", ".*").replace("_", ".") + "$"
            return re.match(pattern, str(value)) is not None
        op, other = node[2], node[3]
        if op == "=":
            return _equal(value, other)
        if op in ("!=", "<>"):
            return not _equal(value, other)
        try:
            a, b = float(value), float(other)
        except (TypeError, ValueError):
            a, b = str(value), str(other)  # type: ignore[assignment]
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)


def node_properties(platform: Platform, node: Node) -> dict[str, Any]:
    """The OAR properties of a node's resources (a Grid'5000-like subset)."""
    cluster = platform.cluster(node.site, node.cluster)
    assert cluster is not None
    return {
        "type": "default",
        "cluster": node.cluster,
        "host": node.fqdn,
        "network_address": node.fqdn,
        "site": node.site,
        "deploy": "YES",
        "besteffort": "YES",
        "maintenance": "NO",
        "drain": "NO",
        "exotic": "YES" if node.exotic else "NO",
        "production": "YES" if "production" in node.queues else "NO",
        "nodemodel": cluster.model,
        "cpuarch": "aarch64" if node.exotic else "x86_64",
        "cpucore": cluster.cores,
        "core_count": cluster.cores,
        "memnode": cluster.ram_gib * 1024,
        "memcore": cluster.ram_gib * 1024 // cluster.cores,
        "eth_count": 2 if node.eth1 else 1,
        "eth_kavlan_count": 2 if node.eth1 else 1,
        "eth_rate": 10,
        "gpu_count": 0,
        "ib": "NO",
        "opa": "NO",
        "wattmeter": "NO",
        "disktype": "HDD",
        "virtual": "ivt",
        "disk_reservation_count": 0,
        "cluster_priority": 1,
    }


# ---- the resources string ----------------------------------------------------------------------


@dataclass
class Group:
    """One `+`-separated part: an optional filter and its levels (`cluster=1`, `nodes=2`, `vlan=1`)."""

    filter: Filter
    levels: list[tuple[str, Count]]
    text: str

    @property
    def kind(self) -> str:
        names = {name for name, _ in self.levels}
        if "vlan" in names:
            return "vlan"
        if names & {"slash_22", "slash_16", "slash_18", "slash_20"}:
            return "subnet"
        return "nodes"


@dataclass
class Request:
    groups: list[Group]
    walltime: Optional[int]


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside braces and quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_resources(text: str) -> Request:
    if not isinstance(text, str):
        raise RequestError("resources must be a string")
    pieces = _split_top(text.strip(), ",")
    walltime = None
    for option in pieces[1:]:
        key, _, value = option.partition("=")
        if key.strip() != "walltime" or not value:
            raise RequestError(f"bad resource option {option!r}")
        walltime = parse_walltime(value)
    groups = []
    for raw in _split_top(pieces[0], "+"):
        raw = raw.strip()
        filt_text = ""
        rest = raw
        if raw.startswith("{"):
            # the filter ends at the first top-level closing brace
            idx, depth, quote = None, 0, ""
            for i, ch in enumerate(raw):
                if quote:
                    quote = "" if ch == quote else quote
                elif ch in "'\"":
                    quote = ch
                elif ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                    if depth == 0:
                        idx = i
                        break
            if idx is None:
                raise RequestError(f"unbalanced braces in {raw!r}")
            filt_text, rest = raw[1:idx], raw[idx + 1 :]
        levels: list[tuple[str, Count]] = []
        for level in (p for p in rest.split("/") if p.strip()):
            name, eq, value = level.partition("=")
            name, value = name.strip().lower(), value.strip()
            if not eq or not re.fullmatch(r"[a-z_0-9]+", name):
                raise RequestError(f"bad resource level {level!r}")
            if name == "nodes":
                name = "host"
            if value.upper() in ("ALL", "BEST"):
                levels.append((name, value.upper()))
            elif value.isdigit():
                levels.append((name, int(value)))
            else:
                raise RequestError(f"bad resource count {level!r}")
        if not levels and not filt_text:
            raise RequestError(f"empty resource group in {text!r}")
        groups.append(Group(Filter(filt_text), levels or [("host", 1)], raw))
    return Request(groups, walltime)


# ---- placement ---------------------------------------------------------------------------------


@dataclass
class Allocation:
    nodes: list[str] = field(default_factory=list)  # fqdns, head node first
    vlans: list[int] = field(default_factory=list)
    subnets: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return {"nodes": list(self.nodes), "vlans": list(self.vlans), "subnets": list(self.subnets)}

    @classmethod
    def from_dict(cls, data: Optional[dict[str, list]]) -> "Allocation":
        data = data or {}
        return cls(list(data.get("nodes", [])), [int(v) for v in data.get("vlans", [])], list(data.get("subnets", [])))


@dataclass
class Busy:
    """Resources held during some interval: what a placement must avoid."""

    nodes: set[str] = field(default_factory=set)
    vlans: set[int] = field(default_factory=set)
    subnets: set[str] = field(default_factory=set)


@dataclass
class Placed:
    start: float
    end: float
    alloc: Allocation
    uid: int = 0
    preemptible: bool = False  # a started besteffort job: other queues may take its resources


VLAN_TYPES = ("kavlan-local", "kavlan", "kavlan-global")


class Placer:
    """Finds resources for a request on one site, given what is busy."""

    def __init__(self, platform: Platform, site: str, queue: str, types: Iterable[str]):
        self.platform = platform
        self.site = site
        types = set(types)
        self.exotic = "exotic" in types
        wanted_queue = "production" if queue == "production" else "default"
        self.nodes = [
            n
            for n in platform.nodes_by_site[site]
            if (queue in ("besteffort", "admin", "testing") or wanted_queue in n.queues) and (self.exotic or not n.exotic)
        ]
        self.props = {n.fqdn: node_properties(platform, n) for n in self.nodes}

    def allocate(self, request: Request, busy: Busy) -> Optional[Allocation]:
        """Resources for every group, or None if some group cannot be served now."""
        alloc = Allocation()
        taken_nodes = set(busy.nodes)
        # named-node groups first, as OAR's users (and EnOSlib) order them
        for group in request.groups:
            kind = group.kind
            if kind == "vlan":
                got = self._vlans(group, busy.vlans | set(alloc.vlans))
                if got is None:
                    return None
                alloc.vlans += got
            elif kind == "subnet":
                got_s = self._subnets(group, busy.subnets | set(alloc.subnets))
                if got_s is None:
                    return None
                alloc.subnets += got_s
            else:
                got_n = self._nodes(group, taken_nodes)
                if got_n is None:
                    return None
                alloc.nodes += got_n
                taken_nodes |= set(got_n)
        return alloc

    def _nodes(self, group: Group, taken: set[str]) -> Optional[list[str]]:
        matching = [n for n in self.nodes if group.filter.matches(self.props[n.fqdn])]
        free = [n for n in matching if n.fqdn not in taken]
        levels = dict(group.levels)
        count: Count = levels.get("host", 1)
        clusters = levels.get("cluster")
        multiplier = 1
        for name, value in group.levels:
            if name not in ("host", "cluster", "core", "cpu", "gpu", "switch"):
                raise RequestError(f"unknown resource level {name!r}")
            if name == "switch" and isinstance(value, int):
                multiplier *= value
        if count == "ALL":
            return [n.fqdn for n in free] if len(free) == len(matching) and free else None
        if count == "BEST":
            return [n.fqdn for n in free] or None
        want = int(count) * multiplier
        if clusters is None or clusters == "BEST" or clusters == "ALL":
            return [n.fqdn for n in free[:want]] if len(free) >= want and want > 0 else None
        picked: list[str] = []
        by_cluster: dict[str, list[Node]] = {}
        for n in free:
            by_cluster.setdefault(n.cluster, []).append(n)
        for nodes in by_cluster.values():
            if len(picked) // want == int(clusters):
                break
            if len(nodes) >= want:
                picked += [n.fqdn for n in nodes[:want]]
        return picked if want > 0 and len(picked) == want * int(clusters) else None

    def _vlans(self, group: Group, busy: set[int]) -> Optional[list[int]]:
        count = dict(group.levels).get("vlan", 1)
        candidates = []
        for vlan in self.platform.vlan_ids(self.site):
            props = {"type": self.platform.vlan_type(self.site, vlan), "vlan": vlan, "site": self.site}
            if "type" not in group.filter.names():
                raise NotEnoughResources("a vlan request needs a type")
            if group.filter.matches(props):
                candidates.append(vlan)
        free = [v for v in candidates if v not in busy]
        if count in ("ALL", "BEST"):
            return free or None
        return free[: int(count)] if len(free) >= int(count) and int(count) > 0 else None

    def _subnets(self, group: Group, busy: set[str]) -> Optional[list[str]]:
        levels = dict(group.levels)
        net = g5ksubnet(self.platform.sites[self.site])
        out: list[str] = []
        for name, prefix in (("slash_22", 22), ("slash_20", 20), ("slash_18", 18), ("slash_16", 16)):
            if name not in levels:
                continue
            if prefix < net.prefixlen:
                raise NotEnoughResources(name)
            count = levels[name]
            free = [str(s) for s in net.subnets(new_prefix=prefix) if str(s) not in busy and str(s) not in out]
            want = len(free) if count in ("ALL", "BEST") else int(count)
            if want <= 0 or len(free) < want:
                return None
            out += free[:want]
        return out

    def feasible(self, request: Request) -> bool:
        """Could the request ever be served (on an idle site)?"""
        return self.allocate(request, Busy()) is not None


def busy_during(placed: Iterable[Placed], start: float, end: float) -> Busy:
    busy = Busy()
    for p in placed:
        if p.start < end and start < p.end:
            busy.nodes |= set(p.alloc.nodes)
            busy.vlans |= set(p.alloc.vlans)
            busy.subnets |= set(p.alloc.subnets)
    return busy


def earliest(
    placer: Placer, request: Request, walltime: float, placed: list[Placed], not_before: float, only_at: Optional[float] = None
) -> Optional[tuple[float, Allocation]]:
    """The earliest start ≥ not_before (or exactly `only_at`) where the request fits for the
    walltime. The free set only grows when a placed job ends, so only `not_before` and those
    end times are candidates."""
    if only_at is not None:
        alloc = placer.allocate(request, busy_during(placed, only_at, only_at + walltime))
        return (only_at, alloc) if alloc else None
    candidates = sorted({not_before} | {p.end for p in placed if p.end > not_before})
    for t in candidates:
        alloc = placer.allocate(request, busy_during(placed, t, t + walltime))
        if alloc is not None:
            return t, alloc
    return None


def fqdn(node: str, site: str) -> str:
    return node if node.endswith(DOMAIN) else f"{node}.{site}.{DOMAIN}"
