"""KaVLAN: `/sites/{s}/vlans...`. Which interface is in which vlan, who may move nodes (the owner
of a running job holding the vlan, and of the nodes), and the moves themselves (with real hosts,
the interface is re-plugged onto that vlan's bridge with its vlan address).

Addresses: a node's primary interface is its FQDN; its secondary one `<node>-eth1.<site>…`.
Every interface is in DEFAULT until moved; a job's end puts its nodes' interfaces back.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from aiohttp import web

from .errors import ApiError
from .jobs import Jobs
from .reference import DOMAIN, Node, Platform, global_home
from .store import Store

DEFAULT = "DEFAULT"
NO_RIGHTS = "Not enough privileges on Kavlan resources"


Move = tuple[Node, str, str]  # (node, device, vlan id or DEFAULT)


class Kavlan:
    """Which interface is in which vlan, per site, written through to the store."""

    def __init__(self, platform: Platform, store: Store, jobs: Jobs):
        self.platform = platform
        self.store = store
        self.jobs = jobs  # rights come from the users' running jobs
        # set by the hosts manager: re-plugs moved interfaces of nodes that are up
        self.on_move: Optional[Callable[[list[Move]], None]] = None
        # site → {address → vlan id string}; absent = DEFAULT
        self.where: dict[str, dict[str, str]] = {s: store.get("kavlan", s, {}) or {} for s in platform.sites}

    def save(self, site: str) -> None:
        self.store.put("kavlan", site, self.where[site])

    # ---- addresses -------------------------------------------------------------------------

    def interface(self, site: str, address: str) -> Optional[tuple[Node, str]]:
        """(node, device) for a kavlan address of this site, or None if unknown."""
        suffix = f".{site}.{DOMAIN}"
        if not address.endswith(suffix):
            return None
        short = address[: -len(suffix)]
        node = self.platform.nodes.get(address)
        if node is not None:
            return node, "eth0"
        if short.endswith("-eth1"):
            node = self.platform.nodes.get(f"{short[:-5]}{suffix}")
            if node is not None and node.eth1:
                return node, "eth1"
        return None

    def vlan_of(self, site: str, address: str) -> str:
        return self.where[site].get(address, DEFAULT)

    def vlan_id(self, site: str, text: str) -> str:
        """Normalise a vlan id from a path (`DEFAULT` or a number of the site's list) or 404."""
        if text.upper() == DEFAULT:
            return DEFAULT
        if text.isdigit() and int(text) in self._listed(site):
            return str(int(text))
        raise ApiError(404, f"Vlan {text} does not exist")

    def _listed(self, site: str) -> list[int]:
        own = self.platform.vlan_ids(site)
        remote = sorted(s.global_vlan for s in self.platform.sites.values() if s.uid != site)
        return own + remote

    # ---- rights ----------------------------------------------------------------------------

    def running_jobs(self, site: str, user: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs.jobs.values() if j["site"] == site and j["user"] == user and j["state"] == "running"]

    def user_vlans(self, site: str, user: str) -> list[str]:
        out: list[str] = []
        for job in self.running_jobs(site, user):
            out += [str(v) for v in (job.get("alloc") or {}).get("vlans", [])]
        return sorted(set(out), key=int)

    def user_nodes(self, site: str, user: str) -> set[str]:
        out: set[str] = set()
        for job in self.running_jobs(site, user):
            out |= set((job.get("alloc") or {}).get("nodes", []))
        return out

    # ---- moves -----------------------------------------------------------------------------

    def rights_site(self, site: str, vlan: str) -> str:
        """Where the job granting rights on `vlan` runs: a global vlan's home site, else here."""
        home = global_home(int(vlan)) if vlan != DEFAULT else None
        return home.uid if home is not None else site

    def set_nodes(self, site: str, vlan: str, user: str, addresses: list[Any]) -> dict[str, Any]:
        if vlan != DEFAULT and vlan not in self.user_vlans(self.rights_site(site, vlan), user):
            raise ApiError(403, NO_RIGHTS)
        mine = self.user_nodes(site, user)
        result: dict[str, Any] = {}
        moves: list[Move] = []
        for address in addresses:
            address = str(address)
            found = self.interface(site, address)
            if found is None:
                result[address] = {"status": "failure", "message": "Unknown node"}
                continue
            node, device = found
            if node.fqdn not in mine:
                result[address] = {"status": "failure", "message": "Not enough privileges on this node"}
                continue
            if self.vlan_of(site, address) == vlan:
                result[address] = {"status": "unchanged", "message": "Node already in vlan"}
                continue
            self._place(site, address, vlan)
            moves.append((node, device, vlan))
            result[address] = {"status": "success", "message": "Successfully added to vlan"}
        self.save(site)
        self._moved(moves)
        return result

    def _moved(self, moves: list[Move]) -> None:
        if moves and self.on_move is not None:
            self.on_move(moves)

    def _place(self, site: str, address: str, vlan: str) -> None:
        if vlan == DEFAULT:
            self.where[site].pop(address, None)
        else:
            self.where[site][address] = vlan

    def move_primary(self, site: str, fqdns: list[str], vlan: str) -> None:
        """Kadeploy's `vlan` option: the deployed nodes end in that vlan."""
        moves = []
        for fqdn in fqdns:
            if self.vlan_of(site, fqdn) != vlan:
                self._place(site, fqdn, vlan)
                moves.append((self.platform.nodes[fqdn], "eth0", vlan))
        self.save(site)
        self._moved(moves)

    def release(self, job: dict[str, Any]) -> None:
        """A job ended: its nodes' interfaces go back to DEFAULT (their hosts go away anyway),
        and so does every interface, of any site, still in a vlan the job held (a global vlan
        gathers nodes of other jobs and sites; those are re-plugged if up)."""
        site = job["site"]
        alloc = job.get("alloc") or {}
        nodes = set(alloc.get("nodes", []))
        held = {str(v) for v in alloc.get("vlans", [])}
        moves: list[Move] = []
        for where_site, where in self.where.items():
            changed = False
            for address, vlan in list(where.items()):
                found = self.interface(where_site, address)
                mine = found is not None and where_site == site and found[0].fqdn in nodes
                if mine or vlan in held:
                    del where[address]
                    changed = True
                    if found is not None and not mine:
                        moves.append((found[0], found[1], DEFAULT))
            if changed:
                self.save(where_site)
        self._moved(moves)

    # ---- API objects -----------------------------------------------------------------------

    def vlan_object(self, site: str, vlan: str, base: str) -> dict[str, Any]:
        kind = "NULL" if vlan == DEFAULT else self.platform.vlan_type(site, int(vlan))
        path = f"{base}/sites/{site}/vlans/{vlan}"
        return {
            "uid": vlan,
            "type": kind,
            "links": [
                {"rel": "self", "href": path, "type": "application/vnd.grid5000.item+json"},
                {"rel": "nodes", "href": f"{path}/nodes", "type": "application/vnd.grid5000.collection+json"},
                {"rel": "users", "href": f"{path}/users", "type": "application/vnd.grid5000.collection+json"},
            ],
        }

    def node_items(self, site: str, vlan: Optional[str], base: str) -> list[dict[str, Any]]:
        items = []
        for node in self.platform.nodes_by_site[site]:
            addresses = [node.fqdn] + ([node.eth1_fqdn] if node.eth1 else [])
            for address in addresses:
                where = self.vlan_of(site, address)
                if vlan is not None and where != vlan:
                    continue
                if vlan is None and address != node.fqdn and where == DEFAULT:
                    continue  # secondary interfaces are listed once they are in a vlan
                items.append(
                    {
                        "uid": address,
                        "vlan": where,
                        "links": [
                            {
                                "rel": "self",
                                "href": f"{base}/sites/{site}/vlans/nodes/{address}",
                                "type": "application/vnd.grid5000.item+json",
                            }
                        ],
                    }
                )
        return items


def add_routes(app: web.Application) -> None:
    from .httputil import KAVLAN, add, base, body, collection, ok, site_of, writer

    def ctx(request: web.Request) -> tuple[Kavlan, str]:
        return request.app[KAVLAN], site_of(request)

    def json_only(request: web.Request) -> None:
        ctype = request.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip() != "application/json":
            raise ApiError(415, f"Content-Type '{ctype}' is not supported")

    async def vlans(request: web.Request) -> web.Response:
        k, site = ctx(request)
        ids = [DEFAULT] + [str(v) for v in k._listed(site)]
        return ok(collection([k.vlan_object(site, v, base(request)) for v in ids], f"{base(request)}/sites/{site}/vlans"))

    async def vlan(request: web.Request) -> web.Response:
        k, site = ctx(request)
        return ok(k.vlan_object(site, k.vlan_id(site, request.match_info["vlan"]), base(request)))

    async def vlan_nodes(request: web.Request) -> web.Response:
        k, site = ctx(request)
        v = k.vlan_id(site, request.match_info["vlan"])
        return ok(collection(k.node_items(site, v, base(request)), f"{base(request)}/sites/{site}/vlans/{v}/nodes"))

    async def vlan_nodes_post(request: web.Request) -> web.Response:
        k, site = ctx(request)
        v = k.vlan_id(site, request.match_info["vlan"])
        name = writer(request)
        json_only(request)
        data = await body(request)
        if not isinstance(data, list) or not data:
            raise ApiError(422, "Missing node list")
        return ok(k.set_nodes(site, v, name, data))

    async def all_nodes(request: web.Request) -> web.Response:
        k, site = ctx(request)
        return ok(collection(k.node_items(site, None, base(request)), f"{base(request)}/sites/{site}/vlans/nodes"))

    async def one_node(request: web.Request) -> web.Response:
        k, site = ctx(request)
        address = request.match_info["node"]
        if k.interface(site, address) is None:
            raise ApiError(404, f"Unknown node '{address}'.")
        return ok({"uid": address, "vlan": k.vlan_of(site, address)})

    async def nodes_post(request: web.Request) -> web.Response:
        k, site = ctx(request)
        json_only(request)
        data = await body(request)
        if not isinstance(data, list) or not data:
            raise ApiError(422, "Missing node list")
        items = [{"uid": str(a), "vlan": k.vlan_of(site, str(a))} for a in data if k.interface(site, str(a))]
        return ok(collection(items, f"{base(request)}/sites/{site}/vlans/nodes"))

    def users_with_rights(k: Kavlan, site: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for job in k.jobs.jobs.values():
            if job["site"] == site and job["state"] == "running" and (job.get("alloc") or {}).get("vlans"):
                out.setdefault(job["user"], [])
                out[job["user"]] = sorted(set(out[job["user"]]) | {str(v) for v in job["alloc"]["vlans"]}, key=int)
        return out

    async def users(request: web.Request) -> web.Response:
        k, site = ctx(request)
        items = [{"uid": u} for u in sorted(users_with_rights(k, site))]
        return ok(collection(items, f"{base(request)}/sites/{site}/vlans/users"))

    async def one_user(request: web.Request) -> web.Response:
        k, site = ctx(request)
        name = request.match_info["user"]
        return ok({"uid": name, "vlans": users_with_rights(k, site).get(name, [])})

    async def vlan_users(request: web.Request) -> web.Response:
        k, site = ctx(request)
        v = k.vlan_id(site, request.match_info["vlan"])
        items = [{"uid": u} for u, ids in sorted(users_with_rights(k, site).items()) if v in ids]
        return ok(collection(items, f"{base(request)}/sites/{site}/vlans/{v}/users"))

    async def vlan_user(request: web.Request) -> web.Response:
        k, site = ctx(request)
        v = k.vlan_id(site, request.match_info["vlan"])
        name = request.match_info["user"]
        granted = v in users_with_rights(k, site).get(name, [])
        return ok({"uid": name, "status": "authorized" if granted else "unauthorized"})

    async def dhcpd(request: web.Request) -> web.Response:
        k, site = ctx(request)
        v = k.vlan_id(site, request.match_info["vlan"])
        name = writer(request)
        json_only(request)
        data = await body(request)
        if not isinstance(data, dict) or data.get("action") not in ("start", "stop"):
            raise ApiError(422, "Invalid action: must be start or stop")
        if v not in k.user_vlans(k.rights_site(site, v), name):
            raise ApiError(403, NO_RIGHTS)
        return web.Response(status=204)

    add(app, "GET", "/sites/{site}/vlans", vlans)
    add(app, "GET", "/sites/{site}/vlans/nodes", all_nodes)
    add(app, "POST", "/sites/{site}/vlans/nodes", nodes_post)
    add(app, "GET", "/sites/{site}/vlans/nodes/{node}", one_node)
    add(app, "GET", "/sites/{site}/vlans/users", users)
    add(app, "GET", "/sites/{site}/vlans/users/{user}", one_user)
    add(app, "GET", "/sites/{site}/vlans/{vlan}", vlan)
    add(app, "GET", "/sites/{site}/vlans/{vlan}/nodes", vlan_nodes)
    add(app, "POST", "/sites/{site}/vlans/{vlan}/nodes", vlan_nodes_post)
    add(app, "GET", "/sites/{site}/vlans/{vlan}/users", vlan_users)
    add(app, "GET", "/sites/{site}/vlans/{vlan}/users/{user}", vlan_user)
    add(app, "PUT", "/sites/{site}/vlans/{vlan}/dhcpd", dhcpd)
