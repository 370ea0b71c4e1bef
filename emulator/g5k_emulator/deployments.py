"""Kadeploy: `/sites/{s}/deployments`. A deployment lasts `deploy_seconds` emulated seconds in
`processing`, then ends `terminated` with a per-node `result` (OK, or KO for injected failures).
With real hosts, an OK node is reinstalled: fresh host key, root logs in with the deployment key.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any, Callable, Optional

from aiohttp import web

from .clock import Clock
from .errors import NOT_AUTHORIZED, ApiError
from .jobs import Jobs
from .kavlan import Kavlan
from .reference import Platform, environment_names
from .store import Store

log = logging.getLogger("g5k_emulator.deployments")
ACCEPTED = (
    "nodes",
    "environment",
    "version",
    "arch",
    "key",
    "vlan",
    "partition_label",
    "block_device",
    "reformat_tmp",
    "disable_disk_partitioning",
    "disable_bootloader_install",
    "ignore_nodes_deploying",
    "reboot_classical_timeout",
    "reboot_kexec_timeout",
)
INVALID = "The deployment you are trying to submit is not valid: "


class Deployments:
    """Every deployment, in memory, written through to the store; moved along by `tick()`."""

    def __init__(self, platform: Platform, clock: Clock, store: Store, jobs: Jobs, kavlan: Kavlan, deploy_seconds: float):
        self.platform = platform
        self.clock = clock
        self.store = store
        self.jobs = jobs
        self.kavlan = kavlan  # kadeploy's `vlan` option moves the deployed nodes there
        self.deploy_seconds = deploy_seconds
        # set by the hosts manager: reinstalls the OK nodes of a deployment (then clears `hosts_busy`)
        self.on_reinstall: Optional[Callable[[dict[str, Any], list[str]], None]] = None
        self.items: dict[str, dict[str, Any]] = store.load("deployment")
        self.failures: dict[str, int] = {}  # fqdn → how many more deployments fail on it
        self.errors: dict[str, int] = {}  # fqdn → how many more deployments with it end `error`

    def save(self, dep: dict[str, Any]) -> None:
        self.store.put("deployment", dep["uid"], dep)

    def add_failures(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
            raise ApiError(422, 'expected {"nodes": [fqdn, ...], "times": N}')
        times = data.get("times", 1)
        if not isinstance(times, int) or times < 1:
            raise ApiError(422, "times must be a positive integer")
        target = self.errors if data.get("error") else self.failures
        for fqdn in data["nodes"]:
            if fqdn not in self.platform.nodes:
                raise ApiError(422, f"unknown node {fqdn!r}")
        for fqdn in data["nodes"]:
            target[fqdn] = target.get(fqdn, 0) + times
        return {"failures": dict(self.failures), "errors": dict(self.errors)}

    @staticmethod
    def _use(counts: dict[str, int], fqdn: str) -> bool:
        if counts.get(fqdn, 0) <= 0:
            return False
        counts[fqdn] -= 1
        if not counts[fqdn]:
            del counts[fqdn]
        return True

    def get(self, site: str, uid: str) -> dict[str, Any]:
        dep = self.items.get(uid)
        if dep is None or dep["site_uid"] != site:
            raise ApiError(404, f"Couldn't find Grid5000::Deployment with ID={uid}")
        return dep

    def submit(self, site: str, user: str, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ApiError(400, INVALID + "the body must be an object")
        data = {k: v for k, v in data.items() if k in ACCEPTED}
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) and n for n in nodes):
            raise ApiError(400, INVALID + "nodes must be a non-empty list of node names")
        env = data.get("environment")
        if not isinstance(env, str) or not env:
            raise ApiError(400, INVALID + "environment must be given")
        key = data.get("key")
        if key is not None and not isinstance(key, str):
            raise ApiError(400, INVALID + "key must be a String")
        vlan = data.get("vlan")
        if vlan is not None:
            vlan = str(vlan)
            if not vlan.isdigit() or int(vlan) not in self.platform.vlan_ids(site):
                raise ApiError(400, f"Cannot launch deployment: Kadeploy error #4: the vlan {vlan} does not exist")
        name = env.split("@", 1)[0]
        if not env.startswith(("http://", "https://")) and name not in environment_names():
            raise ApiError(400, f"Cannot launch deployment: Kadeploy error #21: the environment '{env}' does not exist")
        unknown = [n for n in nodes if n not in self.platform.nodes or self.platform.nodes[n].site != site]
        if unknown:
            raise ApiError(400, f"Cannot launch deployment: Kadeploy error #2: unknown node(s) {', '.join(unknown)}")
        mine = self._deployable(site, user)
        refused = [n for n in nodes if n not in mine]
        if refused:
            raise ApiError(
                400,
                "Cannot launch deployment: Kadeploy error #15: you do not have the right to deploy on "
                f"{', '.join(refused)} (they are not in a running job of yours of type deploy)",
            )
        if not data.get("ignore_nodes_deploying"):
            busy = sorted(
                {n for d in self.items.values() if d["site_uid"] == site and d["status"] == "processing" for n in d["nodes"]} & set(nodes)
            )
            if busy:
                raise ApiError(
                    400,
                    "Cannot launch deployment: Kadeploy error #16: some nodes are already being "
                    f"deployed: {', '.join(busy)} (use ignore_nodes_deploying)",
                )
        now = self.clock.now()
        uid = f"D-{uuid.uuid4()}"
        dep: dict[str, Any] = {
            "uid": uid,
            "site_uid": site,
            "user_uid": user,
            "environment": env,
            "version": data.get("version"),
            "arch": data.get("arch") or "x86_64",
            "status": "processing",
            "nodes": sorted(set(nodes)),
            "vlan": vlan,
            "partition_label": data.get("partition_label"),
            "block_device": data.get("block_device"),
            "created_at": int(now),
            "updated_at": int(now),
            "done_at": now + self.deploy_seconds,
            "key_text": key,
            "key": None,
            "jobs": sorted(mine[n] for n in set(nodes)),
        }
        if key:
            digest = hashlib.sha1(key.encode()).hexdigest()
            if key.startswith(("http://", "https://")):
                dep["key"] = key
            else:
                dep["key"] = f"https://api.grid5000.fr/sites/{site}/files/{user}-{digest}"
        self.items[uid] = dep
        self.save(dep)
        log.info("deployment %s (%s) of %s on %s", uid, user, env, ", ".join(dep["nodes"]))
        return dep

    def _deployable(self, site: str, user: str) -> dict[str, int]:
        """Nodes of the user's running deploy jobs on the site → their job uid."""
        out = {}
        for job in self.jobs.jobs.values():
            if job["site"] == site and job["user"] == user and job["state"] == "running" and "deploy" in job["types"]:
                for n in (job.get("alloc") or {}).get("nodes", []):
                    out[n] = job["uid"]
        return out

    def cancel(self, site: str, uid: str, user: str) -> dict[str, Any]:
        dep = self.get(site, uid)
        if dep["user_uid"] != user:
            raise ApiError(403, NOT_AUTHORIZED)
        if dep["status"] in ("waiting", "processing"):
            dep.update(status="canceled", updated_at=int(self.clock.now()))
            self.save(dep)
        return dep

    def tick(self) -> None:
        now = self.clock.now()
        for dep in self.items.values():
            if dep["status"] != "processing" or now < dep["done_at"] or dep.get("hosts_busy"):
                continue
            if dep.get("result") is None:
                mine = self._deployable(dep["site_uid"], dep["user_uid"])
                gone = [n for n in dep["nodes"] if n not in mine]
                broken = [n for n in dep["nodes"] if self._use(self.errors, n)]
                if gone or broken:
                    why = (
                        f"the nodes {', '.join(gone)} were released before the end of the deployment"
                        if gone
                        else f"Kadeploy error #1: the workflow failed on {', '.join(broken)}"
                    )
                    dep.update(status="error", updated_at=int(now), output=why)
                    log.info("deployment %s error: %s", dep["uid"], why)
                    self.save(dep)
                    continue
                result: dict[str, dict[str, Optional[str]]] = {}
                for fqdn in dep["nodes"]:
                    if self._use(self.failures, fqdn):
                        result[fqdn] = {
                            "macro": "SetDeploymentEnv",
                            "micro": "SetDeploymentEnvUntrusted",
                            "state": "KO",
                            "error": "Unreachable after the reboot",
                        }
                    else:
                        result[fqdn] = {"macro": None, "micro": None, "state": "OK"}
                dep["result"] = result
                ok_nodes = [n for n, r in result.items() if r["state"] == "OK"]
                if dep.get("vlan"):
                    self.kavlan.move_primary(dep["site_uid"], ok_nodes, dep["vlan"])
                if self.on_reinstall is not None and ok_nodes:
                    dep["hosts_busy"] = True
                    self.on_reinstall(dep, ok_nodes)
                    self.save(dep)
                    continue
            dep.update(status="terminated", updated_at=int(now))
            log.info(
                "deployment %s terminated: %s", dep["uid"], ", ".join(f"{n.split('.')[0]} {r['state']}" for n, r in dep["result"].items())
            )
            dep["output"] = f"Deployment of {len(dep['nodes'])} node(s) with {dep['environment']} done"
            self.save(dep)

    def api_object(self, dep: dict[str, Any], base: str) -> dict[str, Any]:
        out = {k: v for k, v in dep.items() if k not in ("key_text", "done_at", "hosts_busy", "jobs") and v is not None}
        out["links"] = [
            {
                "rel": "self",
                "href": f"{base}/sites/{dep['site_uid']}/deployments/{dep['uid']}",
                "type": "application/vnd.grid5000.item+json",
            },
            {"rel": "parent", "href": f"{base}/sites/{dep['site_uid']}", "type": "application/vnd.grid5000.item+json"},
        ]
        return out


def add_routes(app: web.Application) -> None:
    from .httputil import DEPLOYMENTS, add, base, body, collection, ok, query, site_of, writer

    async def create(request: web.Request) -> web.Response:
        deployments = request.app[DEPLOYMENTS]
        site = site_of(request)
        dep = deployments.submit(site, writer(request), await body(request))
        url = f"{request.scheme}://{request.host}{base(request)}/sites/{site}/deployments/{dep['uid']}"
        return ok(deployments.api_object(dep, base(request)), 201, {"Location": url})

    async def listing(request: web.Request) -> web.Response:
        deployments = request.app[DEPLOYMENTS]
        site = site_of(request)
        q = query(request)
        items = [d for d in deployments.items.values() if d["site_uid"] == site]
        if q.get("user"):
            items = [d for d in items if d["user_uid"] == q["user"]]
        if q.get("status"):
            wanted = set(q["status"].split(","))
            items = [d for d in items if d["status"] in wanted]
        items.sort(key=lambda d: (d["created_at"], d["uid"]), reverse=q.get("reverse") != "true")
        try:
            offset = max(0, int(q.get("offset", 0)))
            limit = min(max(0, int(q.get("limit", 50))), 500)
        except ValueError:
            raise ApiError(400, "Bad Request") from None
        page = [deployments.api_object(d, base(request)) for d in items[offset : offset + limit]]
        return ok(collection(page, f"{base(request)}/sites/{site}/deployments", len(items), offset))

    async def get(request: web.Request) -> web.Response:
        deployments = request.app[DEPLOYMENTS]
        dep = deployments.get(site_of(request), request.match_info["uid"])
        return ok(deployments.api_object(dep, base(request)))

    async def delete(request: web.Request) -> web.Response:
        deployments = request.app[DEPLOYMENTS]
        site = site_of(request)
        dep = deployments.cancel(site, request.match_info["uid"], writer(request))
        url = f"{request.scheme}://{request.host}{base(request)}/sites/{site}/deployments/{dep['uid']}"
        return web.Response(status=202, headers={"Location": url})

    add(app, "GET", "/sites/{site}/deployments", listing)
    add(app, "POST", "/sites/{site}/deployments", create)
    add(app, "GET", "/sites/{site}/deployments/{uid}", get)
    add(app, "DELETE", "/sites/{site}/deployments/{uid}", delete)
