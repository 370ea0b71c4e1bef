"""Reference-API and status endpoints: `/`, `/sites`, clusters, nodes, servers, environments,
`/sites/{s}/status` and `/sites/{s}/clusters/{c}/status`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import reference as ref
from .errors import ApiError
from .httputil import CLOCK, JOBS, PLATFORM, add, base, collection, ok, query


def _missing(request: web.Request) -> ApiError:
    path = request.path
    for prefix in ("/stable", "/3.0", "/sid"):
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
    return ApiError(404, f"Cannot find resource {path}")


def _site(request: web.Request) -> ref.SiteSpec:
    site = request.app[PLATFORM].site(request.match_info["site"])
    if site is None:
        raise _missing(request)
    return site


def _cluster(request: web.Request) -> tuple[ref.SiteSpec, ref.ClusterSpec]:
    site = _site(request)
    cluster = request.app[PLATFORM].cluster(site.uid, request.match_info["cluster"])
    if cluster is None:
        raise _missing(request)
    return site, cluster


def _versioned(items: list[dict[str, Any]], path: str) -> dict[str, Any]:
    return collection(items, path, version=ref.VERSION)


def status_body(request: web.Request, site: ref.SiteSpec, cluster: str | None) -> dict[str, Any]:
    """Node and vlan status computed from the jobs (reservations include waiting jobs that
    already have predicted resources unless `waiting=no`)."""
    platform, all_jobs, clock = request.app[PLATFORM], request.app[JOBS], request.app[CLOCK]
    q = query(request)
    with_waiting = q.get("waiting", "yes") != "no"
    details = q.get("job_details", "yes") != "no"
    holders: dict[str, list[dict[str, Any]]] = {}
    vlan_holders: dict[str, list[dict[str, Any]]] = {}
    for job in sorted(all_jobs.jobs.values(), key=lambda j: j["uid"]):
        if job["site"] != site.uid or not job.get("alloc"):
            continue
        if job["state"] not in ("launching", "running", "finishing") and not (with_waiting and job["state"] == "waiting"):
            continue
        summary = all_jobs.api_object(job, base(request), resources=False, events=False)
        summary.pop("links", None)
        for fqdn in job["alloc"]["nodes"]:
            holders.setdefault(fqdn, []).append(summary)
        for vlan in job["alloc"]["vlans"]:
            vlan_holders.setdefault(str(vlan), []).append(summary)
    nodes: dict[str, Any] = {}
    only = q.get("network_address")
    for node in platform.nodes_by_site[site.uid]:
        if cluster and node.cluster != cluster:
            continue
        if only and node.fqdn != only:
            continue
        jobs = holders.get(node.fqdn, [])
        running = [j for j in jobs if j["state"] in ("launching", "running", "finishing")]
        spec = platform.cluster(site.uid, node.cluster)
        ncores = spec.cores if spec is not None else 0  # a node's cluster is always known
        soft = "free"
        if running:
            soft = "busy_besteffort" if all(j["queue"] == "besteffort" for j in running) else "busy"
        nodes[node.fqdn] = {
            "hard": "alive",
            "soft": soft,
            "comment": "OK",
            "free_slots": 0 if running else ncores,
            "freeable_slots": 0,
            "busy_slots": ncores if running else 0,
            "reservations": jobs if details else [{"uid": j["uid"]} for j in jobs],
        }
    body: dict[str, Any] = {
        "uid": int(clock.now()),
        "links": [{"rel": "self", "href": request.path, "type": "application/vnd.grid5000.item+json"}],
    }
    if q.get("nodes") != "no":
        body["nodes"] = nodes
    if q.get("disks") != "no":
        body["disks"] = {}
    if cluster is None:
        if q.get("vlans") != "no":
            body["vlans"] = {
                str(v): {
                    "hard": "alive",
                    "soft": "busy" if vlan_holders.get(str(v)) else "free",
                    "type": platform.vlan_type(site.uid, v),
                    "reservations": vlan_holders.get(str(v), []),
                }
                for v in platform.vlan_ids(site.uid)
            }
        if q.get("subnets") != "no":
            body["subnets"] = {}
    return body


def add_routes(app: web.Application) -> None:
    async def root(request: web.Request) -> web.Response:
        return ok(ref.root_object(base(request)))

    async def sites(request: web.Request) -> web.Response:
        platform = request.app[PLATFORM]
        items = [ref.site_object(s, base(request)) for s in platform.sites.values()]
        return ok(_versioned(items, f"{base(request)}/sites"))

    async def site(request: web.Request) -> web.Response:
        return ok(ref.site_object(_site(request), base(request)))

    async def clusters(request: web.Request) -> web.Response:
        s = _site(request)
        wanted = query(request).get("queues", "admin,default").split(",")
        items = [ref.cluster_object(s, c, base(request)) for c in s.clusters if "all" in wanted or set(wanted) & set(c.queues)]
        return ok(_versioned(items, f"{base(request)}/sites/{s.uid}/clusters"))

    async def cluster(request: web.Request) -> web.Response:
        s, c = _cluster(request)
        return ok(ref.cluster_object(s, c, base(request)))

    async def nodes(request: web.Request) -> web.Response:
        s, c = _cluster(request)
        platform = request.app[PLATFORM]
        items = [ref.node_object(platform, n, base(request)) for n in platform.nodes_by_site[s.uid] if n.cluster == c.uid]
        return ok(_versioned(items, f"{base(request)}/sites/{s.uid}/clusters/{c.uid}/nodes"))

    async def node(request: web.Request) -> web.Response:
        s, c = _cluster(request)
        platform = request.app[PLATFORM]
        n = platform.nodes.get(f"{request.match_info['node']}.{s.uid}.{ref.DOMAIN}")
        if n is None or n.cluster != c.uid:
            raise _missing(request)
        return ok(ref.node_object(platform, n, base(request)))

    async def servers(request: web.Request) -> web.Response:
        s = _site(request)
        return ok(_versioned(ref.server_objects(s, base(request)), f"{base(request)}/sites/{s.uid}/servers"))

    async def server(request: web.Request) -> web.Response:
        s = _site(request)
        found = [x for x in ref.server_objects(s, base(request)) if x["uid"] == request.match_info["server"]]
        if not found:
            raise _missing(request)
        return ok(found[0])

    async def environments(request: web.Request) -> web.Response:
        s = _site(request)
        items = ref.environment_objects(s, base(request))
        q = query(request)
        for key in ("name", "arch", "os"):
            if q.get(key):
                items = [e for e in items if e.get(key) == q[key]]
        return ok(_versioned(items, f"{base(request)}/sites/{s.uid}/environments"))

    async def environment(request: web.Request) -> web.Response:
        s = _site(request)
        wanted = request.match_info["env"]
        found = [e for e in ref.environment_objects(s, base(request)) if wanted in (e["uid"], e["name"])]
        if not found:
            raise _missing(request)
        return ok(found[0])

    async def empty(request: web.Request) -> web.Response:
        s = _site(request)
        return ok(_versioned([], f"{base(request)}/sites/{s.uid}/{request.path.rsplit('/', 1)[-1]}"))

    async def site_status(request: web.Request) -> web.Response:
        return ok(status_body(request, _site(request), None))

    async def cluster_status(request: web.Request) -> web.Response:
        s, c = _cluster(request)
        return ok(status_body(request, s, c.uid))

    add(app, "GET", "/", root)
    add(app, "GET", "/sites", sites)
    add(app, "GET", "/sites/{site}", site)
    add(app, "GET", "/sites/{site}/clusters", clusters)
    add(app, "GET", "/sites/{site}/clusters/{cluster}", cluster)
    add(app, "GET", "/sites/{site}/clusters/{cluster}/nodes", nodes)
    add(app, "GET", "/sites/{site}/clusters/{cluster}/nodes/{node}", node)
    add(app, "GET", "/sites/{site}/clusters/{cluster}/status", cluster_status)
    add(app, "GET", "/sites/{site}/status", site_status)
    add(app, "GET", "/sites/{site}/servers", servers)
    add(app, "GET", "/sites/{site}/servers/{server}", server)
    add(app, "GET", "/sites/{site}/environments", environments)
    add(app, "GET", "/sites/{site}/environments/{env}", environment)
    add(app, "GET", "/sites/{site}/pdus", empty)
    add(app, "GET", "/sites/{site}/network_equipments", empty)
