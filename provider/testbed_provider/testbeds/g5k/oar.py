"""OAR vocabulary: walltimes, reservation dates and the `resources` (-l) string of a job.

Pure functions, unit-tested, shared by the Job resource (which shows the exact request in
preview) and the Reservation backend. The request shape follows Grid'5000 usage and EnOSlib:
`{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1+slash_22=1,walltime=1:00:00`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Optional
from zoneinfo import ZoneInfo

OAR_TZ = ZoneInfo("Europe/Paris")  # OAR servers on Grid'5000 read reservation dates in Paris time
WALLTIME_RE = re.compile(r"^(\d+)(?::([0-5]?\d))?(?::([0-5]?\d))?$")
CLUSTER_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SITE_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
VLAN_TYPES = {"kavlan": "kavlan", "kavlan-local": "kavlan-local", "kavlan-global": "kavlan-global"}
# KaVLAN ids by type on every site (Grid'5000 KaVLAN wiki): local 1-3, routed 4-9, global 10-21.
VLAN_ID_TYPES = {
    **dict.fromkeys(range(1, 4), "kavlan-local"),
    **dict.fromkeys(range(4, 10), "kavlan"),
    **dict.fromkeys(range(10, 22), "kavlan-global"),
}
SUBNET_SIZES = {"slash_22", "slash_18", "slash_16", "slash_14"}
QUEUES = {"default", "production", "besteffort", "testing", "admin"}
MAX_WALLTIME_SECONDS = 168 * 3600  # OAR's generic "limited to 168 hours" admission rule


class OarError(ValueError):
    """A malformed value; `.property` says which input (relative path)."""

    def __init__(self, prop: str, reason: str) -> None:
        super().__init__(reason)
        self.property = prop


def parse_walltime(text: object, prop: str = "walltime") -> int:
    """`H`, `H:MM` or `H:MM:SS` (OAR's forms) → seconds."""
    match = WALLTIME_RE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise OarError(prop, f"walltime `{text}` must be `H:MM:SS`, `H:MM` or `H` (e.g. `1:30:00`)")
    h, m, s = match.groups()
    seconds = int(h) * 3600 + int(m or 0) * 60 + int(s or 0)
    if seconds <= 0:
        raise OarError(prop, f"walltime `{text}` must be longer than zero")
    if seconds > MAX_WALLTIME_SECONDS:
        raise OarError(prop, f"walltime `{text}` exceeds OAR's limit of {MAX_WALLTIME_SECONDS // 3600} hours")
    return seconds


def format_walltime(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def parse_date(text: object, prop: str = "reservation") -> dt.datetime:
    """A start date: ISO 8601 with an offset (`2026-12-01T09:00:00Z`), or OAR's own
    `YYYY-MM-DD hh:mm:ss`, which is Paris time like on the OAR server. Returns an aware datetime."""
    if not isinstance(text, str):
        raise OarError(prop, "must be a date string such as `2026-12-01 09:00:00` (Paris time) or ISO 8601 with an offset")
    raw = text.strip()
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise OarError(prop, f"malformed date `{text}`: use `YYYY-MM-DD hh:mm:ss` (Paris time) or ISO 8601 with an offset") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=OAR_TZ)
    return value


def oar_date(value: dt.datetime) -> str:
    """The `reservation` field OAR expects (Paris local time)."""
    return value.astimezone(OAR_TZ).strftime("%Y-%m-%d %H:%M:%S")


def epoch_iso(seconds: Optional[int]) -> Optional[str]:
    """An API epoch (0/None: not known) → ISO 8601 UTC."""
    if not seconds:
        return None
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class NodeGroup:
    count: int
    cluster: Optional[str] = None
    properties: Optional[str] = None  # an extra OAR SQL filter, e.g. `gpu_count > 0`
    hosts: tuple[str, ...] = ()  # named nodes (FQDNs); count must equal len(hosts) then


@dataclass(frozen=True)
class VlanRequest:
    type: str = "kavlan"
    count: int = 1


@dataclass(frozen=True)
class ResourceRequest:
    nodes: list[NodeGroup] = field(default_factory=list)
    vlan: Optional[VlanRequest] = None
    subnets: dict[str, int] = field(default_factory=dict)  # {"slash_22": 1}
    extra_vlans: tuple[VlanRequest, ...] = ()  # further vlan groups after `vlan`, e.g. a kavlan-global one


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def group_filter(group: NodeGroup) -> str:
    clauses = []
    if group.hosts:
        clauses.append("network_address in (" + ", ".join(_quote(h) for h in group.hosts) + ")")
    if group.cluster:
        clauses.append(f"cluster={_quote(group.cluster)}")
    if group.properties:
        clauses.append(f"({group.properties})" if clauses else group.properties)
    return " AND ".join(clauses)


def resources_string(request: ResourceRequest, walltime_seconds: int) -> str:
    """The exact `resources` field sent to `POST /sites/{site}/jobs`."""
    parts = []
    for group in sorted(request.nodes, key=lambda g: not g.hosts):  # named nodes first, as EnOSlib does
        flt = group_filter(group)
        parts.append(f"{{{flt}}}/nodes={group.count}" if flt else f"nodes={group.count}")
    for vlan in ((request.vlan,) if request.vlan is not None else ()) + tuple(request.extra_vlans):
        parts.append(f"{{type={_quote(vlan.type)}}}/vlan={vlan.count}")
    for size, count in sorted(request.subnets.items()):
        parts.append(f"{size}={count}")
    return "+".join(parts) + f",walltime={format_walltime(walltime_seconds)}"


def check_raw_resources(text: object, prop: str = "rawResources") -> str:
    """Light sanity check of an expert's OAR string (OAR itself is the judge)."""
    if not isinstance(text, str) or not text.strip():
        raise OarError(prop, "must be a non-empty OAR resource string, e.g. `{cluster='paravance'}/nodes=2,walltime=1:00:00`")
    if text.count("{") != text.count("}") or text.count("(") != text.count(")"):
        raise OarError(prop, f"unbalanced braces or parentheses in `{text}`")
    if re.search(r"(^|[/+])(nodes|host)=0\b", text):
        raise OarError(prop, "`nodes=0` is accepted by OAR but breaks its scheduling (oar-team/oar#133)")
    if re.search(r"=(BEST|ALL)\b", text):
        raise OarError(prop, "`BEST`/`ALL` counts are refused by OAR3 (`There are not enough resources`); give a number")
    return text.strip()


def walltime_of_raw(text: str) -> Optional[int]:
    match = re.search(r",\s*walltime=([0-9:]+)\s*$", text)
    return parse_walltime(match.group(1)) if match else None
