"""Nova v2.1: version discovery, the `baremetal` flavor, keypairs and servers on Blazar hosts.

A server is placed at creation: its scheduler hint (`OS-SCH-HNT:scheduler_hints.reservation`,
beside `server` in the body) must name an ACTIVE (or STARTING) `physical:host` reservation of
the project with a host not yet carrying a server, else the server goes to ERROR with Nova's
"No valid host was found" fault, as the Blazar filter makes it on Chameleon. Its status follows
the clock like a lease's: BUILD for `boot_seconds`, then ACTIVE; a server whose lease has ended
is gone. Each server gets a port on the network it asks for (Neutron's, see neutron.py).
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any, Optional

from aiohttp import web

from . import blazar, errors, timefmt
from .cloud import Cloud
from .httputil import base_url, emulator, json_body, no_content, ok, query_value, token

PREFIX = "/compute/v2.1"
MAX_VERSION = "2.96"
fail = lambda message, status=400: errors.nova(status, message)  # noqa: E731
NO_HOST = "No valid host was found. There are not enough hosts available."


def _version(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX_VERSION,
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}{PREFIX}/"}],
    }


async def root(request: web.Request) -> web.Response:
    return ok({"versions": [_version(base_url(request))]})


async def discovery(request: web.Request) -> web.Response:
    return ok({"version": _version(base_url(request))})


async def flavors(request: web.Request) -> web.Response:
    return ok({"flavors": list(emulator(request).cloud.flavors.values())})


async def flavor(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    key = request.match_info["flavor_id"]
    found = cloud.flavors.get(key) or next((f for f in cloud.flavors.values() if f["name"] == key), None)
    if found is None:
        raise fail(f"Flavor {key} could not be found.", 404)
    return ok({"flavor": found})


def _keypairs(cloud: Cloud, user: str) -> dict[str, dict[str, Any]]:
    return {k["name"]: k for k in cloud.all("keypair").values() if k["user_id"] == user}


async def create_keypair(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    user = token(request)["user_id"]
    spec = (await json_body(request, fail)).get("keypair")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise fail("Invalid input for field/attribute keypair.")
    if not isinstance(spec.get("public_key"), str) or not spec["public_key"].startswith(("ssh-", "ecdsa-")):
        raise fail("Keypair data is invalid: failed to generate fingerprint")
    if spec["name"] in _keypairs(cloud, user):
        raise fail(f"Key pair '{spec['name']}' already exists.", 409)
    kp = {
        "id": str(uuid.uuid4()),
        "name": spec["name"],
        "public_key": spec["public_key"],
        "fingerprint": ":".join(secrets.token_hex(1) for _ in range(16)),
        "user_id": user,
        "type": "ssh",
        "created_at": timefmt.iso_z(cloud.now()),
    }
    cloud.save("keypair", kp)
    return ok({"keypair": {k: v for k, v in kp.items() if k != "id"}})


async def list_keypairs(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    pairs = _keypairs(cloud, token(request)["user_id"]).values()
    return ok({"keypairs": [{"keypair": {k: v for k, v in p.items() if k != "id"}} for p in pairs]})


async def get_keypair(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    kp = _keypairs(cloud, token(request)["user_id"]).get(request.match_info["name"])
    if kp is None:
        raise fail(f"Keypair {request.match_info['name']} not found for user", 404)
    return ok({"keypair": {k: v for k, v in kp.items() if k != "id"}})


async def delete_keypair(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    kp = _keypairs(cloud, token(request)["user_id"]).get(request.match_info["name"])
    if kp is None:
        raise fail(f"Keypair {request.match_info['name']} not found for user", 404)
    cloud.drop("keypair", kp["id"])
    return web.Response(status=202)


def status_of(cloud: Cloud, server: dict[str, Any]) -> str:
    if server.get("error"):
        return "ERROR"
    if server.get("booting"):  # its real host is not answering yet
        return "BUILD"
    return "BUILD" if cloud.now() < server["created"] + cloud.config.boot_seconds else "ACTIVE"


def _place(cloud: Cloud, hint: Any) -> Optional[str]:
    """The Blazar host the hint's reservation gives this server, or None (no valid host)."""
    if not isinstance(hint, str):
        return None
    found = blazar.reservation(cloud, hint)
    if found is None:
        return None
    lease, r = found
    if blazar.status_of(cloud, lease) not in ("STARTING", "ACTIVE"):
        return None
    taken = {s.get("host") for s in cloud.all("server").values() if not s.get("error")}
    return next((h for h in r.get("hosts", []) if h not in taken), None)


def expire(cloud: Cloud) -> None:
    """Servers whose lease has ended are deleted with it, as Blazar's end_lease does."""
    for server in list(cloud.all("server").values()):
        lease_id = server.get("lease")
        lease = cloud.all("lease").get(lease_id or "")
        if lease_id and (lease is None or blazar.status_of(cloud, lease) == "TERMINATED"):
            delete(cloud, server)


def delete(cloud: Cloud, server: dict[str, Any]) -> None:
    if cloud.on_server_gone is not None:
        cloud.on_server_gone(server)
    for port in [p for p in cloud.all("port").values() if p.get("device_id") == server["id"]]:
        for fip in cloud.all("fip").values():
            if fip.get("port_id") == port["id"]:
                cloud.save("fip", {**fip, "port_id": None, "fixed_ip_address": None, "status": "DOWN"})
        cloud.drop("port", port["id"])
    cloud.drop("server", server["id"])


def view(cloud: Cloud, server: dict[str, Any], base: str) -> dict[str, Any]:
    status = status_of(cloud, server)
    addresses: dict[str, list[dict[str, Any]]] = {}
    for port in cloud.all("port").values():
        if port.get("device_id") != server["id"]:
            continue
        net = cloud.networks[port["network_id"]]["name"]
        for ip in port["fixed_ips"]:
            entry = {"addr": ip["ip_address"], "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]}
            addresses.setdefault(net, []).append(entry)
        for fip in cloud.all("fip").values():
            if fip.get("port_id") == port["id"]:
                addresses.setdefault(net, []).append(
                    {
                        "addr": fip["floating_ip_address"],
                        "version": 4,
                        "OS-EXT-IPS:type": "floating",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
    out = {
        "id": server["id"],
        "name": server["name"],
        "status": status,
        "tenant_id": cloud.config.project_id,
        "user_id": server["user_id"],
        "metadata": server.get("metadata") or {},
        "key_name": server.get("key_name"),
        "image": {"id": server["image"]},
        "flavor": {"id": server["flavor"]},
        "addresses": addresses if status != "ERROR" else {},
        "created": timefmt.iso_z(server["created"]),
        "updated": timefmt.iso_z(server["created"]),
        "OS-EXT-STS:vm_state": {"ACTIVE": "active", "BUILD": "building", "ERROR": "error"}[status],
        "OS-EXT-STS:task_state": "spawning" if status == "BUILD" else None,
        "OS-EXT-AZ:availability_zone": "nova",
        "security_groups": [{"name": "default"}],
        "links": [{"rel": "self", "href": f"{base}{PREFIX}/servers/{server['id']}"}],
    }
    if status == "ERROR":
        out["fault"] = {"code": 500, "message": server["error"], "created": timefmt.iso_z(server["created"])}
    return out


async def create_server(request: web.Request) -> web.Response:
    emu = emulator(request)
    cloud = emu.cloud
    tok = token(request)
    body = await json_body(request, fail)
    spec = body.get("server")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise fail("Invalid input for field/attribute server.")
    image = spec.get("imageRef")
    if image not in cloud.images:
        raise fail(f"Image {image} could not be found.")
    flavor = spec.get("flavorRef")
    if flavor not in cloud.flavors and flavor not in {f["name"] for f in cloud.flavors.values()}:
        raise fail(f"Flavor {flavor} could not be found.")
    key = spec.get("key_name")
    if key is not None and key not in _keypairs(cloud, tok["user_id"]):
        raise fail("Invalid key_name provided.")
    networks = spec.get("networks") or []
    if not isinstance(networks, list) or not networks or not all(isinstance(n, dict) for n in networks):
        raise fail("Multiple possible networks found, use a Network ID to be more specific.", 409)
    metadata = spec.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise fail("Invalid input for field/attribute metadata.")
    hint = (body.get("OS-SCH-HNT:scheduler_hints") or {}).get("reservation")
    expire(cloud)
    host = _place(cloud, hint)
    found = blazar.reservation(cloud, hint) if isinstance(hint, str) else None
    server = {
        "id": str(uuid.uuid4()),
        "name": spec["name"],
        "user_id": tok["user_id"],
        "image": image,
        "flavor": flavor,
        "key_name": key,
        "metadata": {str(k): str(v) for k, v in metadata.items()},
        "created": cloud.now(),
        "host": host,
        "lease": found[0]["id"] if found else None,
        "error": None if host else NO_HOST,
        "slot": min(set(range(1, len(cloud.all("server")) + 2)) - {s.get("slot") for s in cloud.all("server").values()}),
        "booting": bool(host and cloud.on_server_boot),
    }
    cloud.save("server", server)
    if host:
        from .neutron import attach

        for n in networks:
            attach(cloud, server, n)
        if cloud.on_server_boot is not None:
            cloud.on_server_boot(server)
    return ok(
        {
            "server": {
                "id": server["id"],
                "links": [],
                "adminPass": secrets.token_urlsafe(9),
                "OS-DCF:diskConfig": "MANUAL",
                "security_groups": [{"name": "default"}],
            }
        },
        202,
    )


def _servers(request: web.Request) -> list[dict[str, Any]]:
    cloud = emulator(request).cloud
    expire(cloud)
    servers = sorted(cloud.all("server").values(), key=lambda s: s["created"])
    name = query_value(request, "name")
    if name:
        pattern = re.compile(name)
        servers = [s for s in servers if pattern.search(s["name"])]
    return servers


async def list_servers(request: web.Request) -> web.Response:
    base = base_url(request)
    return ok(
        {
            "servers": [
                {"id": s["id"], "name": s["name"], "links": [{"rel": "self", "href": f"{base}{PREFIX}/servers/{s['id']}"}]}
                for s in _servers(request)
            ]
        }
    )


async def list_servers_detail(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    return ok({"servers": [view(cloud, s, base_url(request)) for s in _servers(request)]})


def _server(cloud: Cloud, server_id: str) -> dict[str, Any]:
    expire(cloud)
    server = cloud.all("server").get(server_id)
    if server is None:
        raise fail(f"Instance {server_id} could not be found.", 404)
    return server


async def get_server(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    return ok({"server": view(cloud, _server(cloud, request.match_info["server_id"]), base_url(request))})


async def delete_server(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    delete(cloud, _server(cloud, request.match_info["server_id"]))
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/compute", root)
    r.add_get("/compute/", root)
    r.add_get(PREFIX, discovery)
    r.add_get(f"{PREFIX}/", discovery)
    r.add_get(f"{PREFIX}/flavors", flavors)
    r.add_get(f"{PREFIX}/flavors/detail", flavors)
    r.add_get(f"{PREFIX}/flavors/{{flavor_id}}", flavor)
    r.add_post(f"{PREFIX}/os-keypairs", create_keypair)
    r.add_get(f"{PREFIX}/os-keypairs", list_keypairs)
    r.add_get(f"{PREFIX}/os-keypairs/{{name}}", get_keypair)
    r.add_delete(f"{PREFIX}/os-keypairs/{{name}}", delete_keypair)
    r.add_post(f"{PREFIX}/servers", create_server)
    r.add_get(f"{PREFIX}/servers", list_servers)
    r.add_get(f"{PREFIX}/servers/detail", list_servers_detail)
    r.add_get(f"{PREFIX}/servers/{{server_id}}", get_server)
    r.add_delete(f"{PREFIX}/servers/{{server_id}}", delete_server)
