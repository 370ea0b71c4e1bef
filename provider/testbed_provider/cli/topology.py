"""`testbed topology`: the experiment's hosts and networks, drawn from stack state alone.

One model (`model()`) feeds every view: the graphviz drawing here (svg, png, dot) and its JSON,
which the `testbed ui` page draws in the browser, so the two never disagree. The model is built
from every `testbed:index:Reservation` of the stack's deployment (read through the Automation
API, as the other commands do), plus where the stack's Monitoring collectors run.

The JSON model (`version` 1)::

    {"version": 1, "stack": "dev",
     "reservations": [{"name", "backend", "sites": [...]}],
     "hosts": [{"id": "<reservation>/<name>", "name", "reservation", "address", "roles": [...],
                "site": str|null, "fqdn": str|null}],
     "networks": [{"id": "<reservation>/<network id>", "network": "_ssh"|<id>, "reservation",
                   "kind": "management"|"experiment", "label", "cidr": str|null,
                   "sites": [...], "spansSites": bool, "vlan": str|null, "vlanType": str|null}],
     "links": [{"id": "<host id>|<network>", "host": <host id>, "network": <network id>,
                "interface": str|null, "address"}],
     "roles": {"<role>": [<host id>, ...]},
     "monitoring": [{"name", "host": <host id>|null, "hostName", "port", "url"}]}

Ids are scoped by reservation: two reservations may both have a `server-1` and an `experiment`
network, and each has its own management network. The management network is `_ssh`, as in a
Reservation's `addresses` output (each host's `address`, the one SSH uses): on the local testbed
its interface is `eth0` (the backend's fixed wiring); on Grid'5000 it is the production network,
whose device the state does not record (`interface` null).
"""

from __future__ import annotations

from typing import Any, Optional

from .stacks import RESERVATION, CliError, export, reveal

MONITORING = "testbed:services:Monitoring"
SSH_NETWORK = "_ssh"
MODEL_VERSION = 1
FORMATS = ("svg", "dot", "json", "png")
LOCAL_MANAGEMENT_INTERFACE = "eth0"  # testbeds/local/naming.py: eth0 on br0, eth{k+1} on network k
GLOBAL_VLAN_MIN = 10  # KaVLAN: kavlan-global ids start here; routed ones are 4-9, local ones 1-3
ROUTED_VLANS = (4, 9)
# Role colours (fill) in a fixed order: a role keeps its colour between two runs of one stack.
PALETTE = ("#cfe2ff", "#d1f2d9", "#ffe5b4", "#f8d7da", "#e2d9f3", "#d2f4f4", "#fff3b0", "#e9ecef")


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _local_management_cidr() -> str:
    from ..testbeds.local.addressing import MANAGEMENT

    return str(MANAGEMENT)


def _sorted_sites(values: Any) -> list[str]:
    return sorted({v for v in values if isinstance(v, str) and v})


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else an empty one (state written by older versions may lack keys)."""
    return value if isinstance(value, dict) else {}


def _objs(value: Any) -> list[dict[str, Any]]:
    """The objects of a list (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _g5k_vlans(outputs: dict[str, Any], sites_of: dict[str, set[str]]) -> dict[str, tuple[str, str]]:
    """Network id -> (KaVLAN id, type) on Grid'5000, as the backend's plan assigned them
    (testbeds/g5k/plan.py): a multi-site network gets the kavlan-global vlan of its home site (the
    site of its first member group), each single-site network one of its site's routed vlans, in
    network order. Only what the state tells; nothing is guessed when it does not."""
    state = _obj(outputs.get("testbedState"))
    by_site = {str(j.get("site")): j for j in _objs(_obj(state.get("g5k")).get("jobs"))}
    group_site: dict[int, str] = {}
    groups_of: dict[str, set[int]] = {}
    for h in _objs(state.get("hosts")):
        group = h.get("group")
        if isinstance(group, int):
            if h.get("site"):
                group_site.setdefault(group, str(h["site"]))
            for n in _objs(h.get("networks")):
                if n.get("id"):
                    groups_of.setdefault(str(n["id"]), set()).add(group)
    order = [str(n["id"]) for n in _objs(outputs.get("networks")) if n.get("id")]
    order += sorted(set(sites_of) - set(order))
    routed_left = {
        site: [str(v) for v in job.get("vlans") or [] if str(v).isdigit() and ROUTED_VLANS[0] <= int(v) <= ROUTED_VLANS[1]]
        for site, job in by_site.items()
    }
    out: dict[str, tuple[str, str]] = {}
    for net in order:
        sites = sites_of.get(net) or set()
        if len(sites) > 1:
            groups = groups_of.get(net) or set()
            home = group_site.get(min(groups), "") if groups else ""
            vlan = _obj(by_site.get(home)).get("globalVlan")
            if vlan:
                out[net] = (str(vlan), "kavlan-global")
        elif len(sites) == 1:
            left = routed_left.get(next(iter(sites))) or []
            if left:
                out[net] = (left.pop(0), "kavlan")
    return out


def _reservation(name: str, outputs: dict[str, Any], model: dict[str, Any]) -> None:
    """Add one Reservation's hosts, networks and links to `model`."""
    backend = str(outputs.get("backend") or "")
    state = _obj(outputs.get("testbedState"))
    state_hosts = {str(h.get("name")): h for h in _objs(state.get("hosts"))}
    hosts = [h for h in _objs(outputs.get("hosts")) if h.get("name")]
    if not hosts:  # states from before `hosts` was an output
        hosts = [h for h in _objs(_obj(outputs.get("inventory")).get("hosts")) if h.get("name")]

    site_of = {str(h["name"]): str(_obj(state_hosts.get(str(h["name"]))).get("site") or "") for h in hosts}
    sites_of: dict[str, set[str]] = {}
    cidrs: dict[str, str] = {}
    for h in hosts:
        for n in _objs(h.get("networks")):
            if n.get("id"):
                net = sites_of.setdefault(str(n["id"]), set())
                if site_of[str(h["name"])]:
                    net.add(site_of[str(h["name"])])
                if n.get("cidr"):
                    cidrs.setdefault(str(n["id"]), str(n["cidr"]))
    for n in _objs(state.get("networks")):  # the local backend records each network's cidr
        if n.get("id") and n.get("cidr"):
            cidrs.setdefault(str(n["id"]), str(n["cidr"]))
    vlans = _g5k_vlans(outputs, sites_of) if backend == "g5k" else {}
    all_sites = _sorted_sites(site_of.values())
    model["reservations"].append({"name": name, "backend": backend, "sites": all_sites})

    def net_id(network: str) -> str:
        return f"{name}/{network}"

    management = "production network" if backend == "g5k" else "management network"
    model["networks"].append(
        {
            "id": net_id(SSH_NETWORK),
            "network": SSH_NETWORK,
            "reservation": name,
            "kind": "management",
            "label": management,
            "cidr": _local_management_cidr() if backend == "local" else None,
            "sites": all_sites,
            "spansSites": len(all_sites) > 1,
            "vlan": None,
            "vlanType": None,
        }
    )
    declared = [str(n["id"]) for n in _objs(outputs.get("networks")) if n.get("id")]
    for network in [*declared, *sorted(set(sites_of) - set(declared))]:
        sites = _sorted_sites(sites_of.get(network) or ())
        vlan = vlans.get(network)
        model["networks"].append(
            {
                "id": net_id(network),
                "network": network,
                "reservation": name,
                "kind": "experiment",
                "label": network,
                "cidr": cidrs.get(network),
                "sites": sites,
                "spansSites": len(sites) > 1,
                "vlan": vlan[0] if vlan else None,
                "vlanType": vlan[1] if vlan else None,
            }
        )
    for h in hosts:
        host_id = f"{name}/{h['name']}"
        roles = [str(r) for r in h.get("roles") or []]
        extra = _obj(state_hosts.get(str(h["name"])))
        model["hosts"].append(
            {
                "id": host_id,
                "name": h["name"],
                "reservation": name,
                "address": str(h.get("address") or ""),
                "roles": roles,
                "site": extra.get("site"),
                "fqdn": extra.get("fqdn"),
            }
        )
        for role in roles:
            model["roles"].setdefault(role, []).append(host_id)
        model["links"].append(
            {
                "id": f"{host_id}|{SSH_NETWORK}",
                "host": host_id,
                "network": net_id(SSH_NETWORK),
                "interface": LOCAL_MANAGEMENT_INTERFACE if backend == "local" else None,
                "address": str(h.get("address") or ""),
            }
        )
        for n in _objs(h.get("networks")):
            if n.get("id"):
                model["links"].append(
                    {
                        "id": f"{host_id}|{n['id']}",
                        "host": host_id,
                        "network": net_id(n["id"]),
                        "interface": n.get("interface") or None,
                        "address": str(n.get("address") or ""),
                    }
                )


def monitorings(deployment: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, revealed outputs) of every Monitoring of the deployment."""
    found = [r for r in deployment.get("resources") or [] if r.get("type") == MONITORING and not r.get("delete")]
    return [(_name(r.get("urn", "")), reveal(r.get("outputs") or {})) for r in found]


def collector_of(outputs: dict[str, Any]) -> Optional[dict[str, Any]]:
    """A Monitoring's collector `{host, address, port, url, ...}`: the `prometheus` output (its
    typed definition), or `collector` when that is an object (an earlier contract)."""
    for key in ("prometheus", "collector"):
        value = outputs.get(key)
        if isinstance(value, dict) and value.get("host") and value.get("port"):
            return value
    return None


def model(stack: str, deployment: dict[str, Any]) -> dict[str, Any]:
    """The topology of a deployment (see the module docstring for its shape)."""
    out: dict[str, Any] = {
        "version": MODEL_VERSION,
        "stack": stack,
        "reservations": [],
        "hosts": [],
        "networks": [],
        "links": [],
        "roles": {},
        "monitoring": [],
    }
    found = [r for r in deployment.get("resources") or [] if r.get("type") == RESERVATION and not r.get("delete")]
    for r in found:
        outputs = reveal(r.get("outputs") or {})
        if outputs.get("hosts") or outputs.get("inventory"):
            _reservation(_name(r.get("urn", "")), outputs, out)
    for name, outputs in monitorings(deployment):
        collector = collector_of(outputs)
        if collector is None:
            continue
        host = next((h["id"] for h in out["hosts"] if h["name"] == collector["host"]), None)
        out["monitoring"].append(
            {"name": name, "host": host, "hostName": str(collector["host"]), "port": int(collector["port"]), "url": collector.get("url")}
        )
    return out


def load(cwd: str, stack: Optional[str]) -> dict[str, Any]:
    """The model of a live stack; an error when it holds no reserved host yet."""
    name, deployment = export(cwd, stack)
    built = model(name, deployment)
    if not built["hosts"]:
        raise CliError(f"stack `{name}` has no reserved hosts (no {RESERVATION} with hosts: run `pulumi up`)")
    return built


# ---- drawing ---------------------------------------------------------------------------------------


def role_colours(built: dict[str, Any]) -> dict[str, str]:
    """Role -> fill colour, in the order roles first appear (the ui page uses the same)."""
    return {role: PALETTE[k % len(PALETTE)] for k, role in enumerate(built["roles"])}


def _network_label(net: dict[str, Any]) -> str:
    lines = [net["label"]]
    if net.get("cidr"):
        lines.append(net["cidr"])
    if net.get("vlan"):
        lines.append(f"{net.get('vlanType') or 'kavlan'} vlan {net['vlan']}")
    if net.get("spansSites"):
        lines.append("spans sites: " + ", ".join(net["sites"]))
    elif net.get("sites"):
        lines.append("site: " + ", ".join(net["sites"]))
    return "\\n".join(lines)


def _host_label(host: dict[str, Any], collectors: set[str]) -> str:
    lines = [host["name"], "roles: " + ", ".join(host["roles"]), host["address"]]
    if host.get("site"):
        lines.append(f"site: {host['site']}")
    if host["id"] in collectors:
        lines.append("metrics collector")
    return "\\n".join(lines)


def graph(built: dict[str, Any]) -> Any:
    """A graphviz Graph of the model: per reservation a cluster, in it one cluster per set of roles
    (a host with several roles sits in the cluster of that combination), networks as ellipses,
    links labelled with interface and address. `dot` lays it out."""
    import graphviz

    colours = role_colours(built)
    collectors = {m["host"] for m in built["monitoring"] if m.get("host")}
    g = graphviz.Graph(
        "topology", graph_attr={"rankdir": "LR", "label": f"stack {built['stack']}", "labelloc": "t", "fontname": "DejaVu Sans"}
    )
    g.attr("node", fontname="DejaVu Sans", fontsize="11")
    g.attr("edge", fontname="DejaVu Sans", fontsize="9")
    for k, res in enumerate(built["reservations"]):
        with g.subgraph(name=f"cluster_r{k}") as rg:
            sites = f" (sites: {', '.join(res['sites'])})" if res["sites"] else ""
            rg.attr(label=f"reservation {res['name']} on {res['backend'] or '?'}{sites}", style="dashed")
            hosts = [h for h in built["hosts"] if h["reservation"] == res["name"]]
            combos: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for h in hosts:
                combos.setdefault(tuple(h["roles"]), []).append(h)
            for j, (roles, members) in enumerate(combos.items()):
                with rg.subgraph(name=f"cluster_r{k}_{j}") as cg:
                    fill = colours.get(roles[0], PALETTE[-1]) if roles else PALETTE[-1]
                    cg.attr(label="roles: " + (", ".join(roles) or "none"), style="rounded,filled", fillcolor=fill, color="#888888")
                    for h in members:
                        cg.node(h["id"], _host_label(h, collectors), shape="box", style="rounded,filled", fillcolor="white")
            for net in (n for n in built["networks"] if n["reservation"] == res["name"]):
                mgmt = net["kind"] == "management"
                rg.node(
                    net["id"],
                    _network_label(net),
                    shape="ellipse",
                    style="filled" + (",dashed" if mgmt else ""),
                    fillcolor="#f1f3f5" if mgmt else ("#ffd8a8" if net.get("spansSites") else "#fff9db"),
                )
    for link in built["links"]:
        label = " ".join(x for x in (link.get("interface"), link.get("address")) if x)
        mgmt = link["network"].endswith("/" + SSH_NETWORK)
        g.edge(link["host"], link["network"], label=label, style="dashed" if mgmt else "solid", color="#999999" if mgmt else "#333333")
    return g


def render(built: dict[str, Any], fmt: str) -> bytes:
    """The model as `fmt` (svg, png, dot: through Debian's `dot`; json: the model itself)."""
    if fmt == "json":
        import json

        return (json.dumps(built, indent=2) + "\n").encode()
    g = graph(built)
    if fmt == "dot":
        return g.source.encode()
    import graphviz

    try:
        return g.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise CliError("graphviz's `dot` is not installed (Debian package graphviz; scripts/setup-system.sh installs it)") from None


def topology(cwd: str, stack: Optional[str], fmt: str, output: Optional[str]) -> int:
    """Write the drawing to `output`, or to stdout."""
    import sys

    data = render(load(cwd, stack), fmt)
    if output:
        with open(output, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def add_parser(sub: Any) -> None:
    """The `topology` subcommand (registered by cli/__init__.py; `handler` dispatches)."""
    p = sub.add_parser(
        "topology",
        help="draw the stack's hosts, networks and roles (svg, png, dot, or the JSON model)",
        description="Draw every Reservation of the stack from its state alone: hosts (name, roles, management "
        "address), their interfaces and addresses, one node per network (the management network and each experiment "
        "network, with its CIDR and, on Grid'5000, its vlan and the sites it spans), hosts grouped and coloured by "
        "roles. Laid out by graphviz's `dot`; `--format json` prints the model itself (what `testbed ui` draws).",
    )
    p.add_argument("--cwd", default=".", metavar="DIR", help="the Pulumi project directory (default: .)")
    p.add_argument("--stack", "-s", metavar="NAME", help="the stack (default: the selected stack)")
    p.add_argument("--format", "-f", choices=FORMATS, default="svg")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE (default: stdout)")
    p.set_defaults(handler=lambda args: topology(args.cwd, args.stack, args.format, args.output))
