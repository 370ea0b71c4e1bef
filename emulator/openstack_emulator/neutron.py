"""Neutron v2.0: the shared and public networks with their subnets, ports (one per server on
each network it asks for), floating IPs from the public network, security groups (listed)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from . import errors, timefmt
from .cloud import Cloud, mac_address
from .httputil import emulator, json_body, no_content, ok, query_value

PREFIX = "/network/v2.0"
FILTERS = ("id", "name", "network_id", "device_id", "port_id", "floating_network_id", "status")


def fail(message: str, status: int = 400, kind: str = "BadRequest") -> errors.ApiError:
    return errors.neutron(status, kind, message)


def _filtered(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for key in FILTERS + ("router:external",):
        wanted = query_value(request, key)
        if wanted is not None:
            items = [i for i in items if str(i.get(key)).lower() == wanted.lower()]
    return items


def new_port(cloud: Cloud, network_id: str, name: str = "", device_id: str = "") -> dict[str, Any]:
    if network_id not in cloud.networks:
        raise fail(f"Network {network_id} could not be found.", 404, "NetworkNotFound")
    try:
        subnet, address = cloud.allocate_ip(network_id)
    except LookupError as err:
        raise fail(str(err), 409, "IpAddressGenerationFailure") from None
    port = {
        "id": str(uuid.uuid4()),
        "name": name,
        "network_id": network_id,
        "status": "ACTIVE" if device_id else "DOWN",
        "admin_state_up": True,
        "fixed_ips": [{"subnet_id": subnet, "ip_address": address}],
        "mac_address": mac_address(),
        "device_id": device_id,
        "device_owner": "compute:nova" if device_id else "",
        "project_id": cloud.config.project_id,
        "tenant_id": cloud.config.project_id,
        "security_groups": [],
        "created_at": timefmt.iso_z(cloud.now()),
    }
    cloud.save("port", port)
    return port


def attach(cloud: Cloud, server: dict[str, Any], spec: dict[str, Any]) -> None:
    """A server's port on `{"uuid": network}` (made here) or `{"port": port}` (given)."""
    if spec.get("port"):
        port = cloud.all("port").get(str(spec["port"]))
        if port is None:
            raise errors.nova(400, f"Port {spec['port']} could not be found.")
        cloud.save("port", {**port, "device_id": server["id"], "device_owner": "compute:nova", "status": "ACTIVE"})
        return
    nid = str(spec.get("uuid") or "")
    if nid not in cloud.networks:
        raise errors.nova(400, f"Network {nid} could not be found.")
    new_port(cloud, nid, device_id=server["id"])


async def networks(request: web.Request) -> web.Response:
    return ok({"networks": _filtered(request, list(emulator(request).cloud.networks.values()))})


async def network(request: web.Request) -> web.Response:
    found = emulator(request).cloud.networks.get(request.match_info["id"])
    if found is None:
        raise fail(f"Network {request.match_info['id']} could not be found.", 404, "NetworkNotFound")
    return ok({"network": found})


async def subnets(request: web.Request) -> web.Response:
    return ok({"subnets": _filtered(request, list(emulator(request).cloud.subnets.values()))})


async def ports(request: web.Request) -> web.Response:
    return ok({"ports": _filtered(request, list(emulator(request).cloud.all("port").values()))})


async def create_port(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    spec = (await json_body(request, fail)).get("port")
    if not isinstance(spec, dict) or not isinstance(spec.get("network_id"), str):
        raise fail("Invalid input: a port needs network_id")
    return ok({"port": new_port(cloud, spec["network_id"], str(spec.get("name") or ""))}, 201)


async def delete_port(request: web.Request) -> web.Response:
    if emulator(request).cloud.drop("port", request.match_info["id"]) is None:
        raise fail(f"Port {request.match_info['id']} could not be found.", 404, "PortNotFound")
    return no_content()


def _fip_port(cloud: Cloud, port_id: Any) -> tuple[Any, Any]:
    if port_id is None:
        return None, None
    port = cloud.all("port").get(str(port_id))
    if port is None:
        raise fail(f"Port {port_id} could not be found.", 404, "PortNotFound")
    return port["id"], port["fixed_ips"][0]["ip_address"]


async def floating_ips(request: web.Request) -> web.Response:
    return ok({"floatingips": _filtered(request, list(emulator(request).cloud.all("fip").values()))})


async def create_fip(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    spec = (await json_body(request, fail)).get("floatingip")
    if not isinstance(spec, dict):
        raise fail("Invalid input: floatingip expected")
    net = cloud.networks.get(str(spec.get("floating_network_id")))
    if net is None or not net["router:external"]:
        raise fail(f"External network {spec.get('floating_network_id')} is not reachable.", 404, "ExternalNetworkNotFound")
    port_id, fixed = _fip_port(cloud, spec.get("port_id"))
    try:
        _, address = cloud.allocate_ip(net["id"])
    except LookupError:
        raise fail(f"No more IP addresses available on network {net['id']}.", 409, "IpAddressGenerationFailure") from None
    fip = {
        "id": str(uuid.uuid4()),
        "floating_ip_address": address,
        "floating_network_id": net["id"],
        "port_id": port_id,
        "fixed_ip_address": fixed,
        "status": "ACTIVE" if port_id else "DOWN",
        "router_id": None,
        "description": str(spec.get("description") or ""),
        "project_id": cloud.config.project_id,
        "tenant_id": cloud.config.project_id,
        "created_at": timefmt.iso_z(cloud.now()),
    }
    cloud.save("fip", fip)
    _changed(cloud, fip)
    return ok({"floatingip": fip}, 201)


def _fip(cloud: Cloud, fip_id: str) -> dict[str, Any]:
    fip = cloud.all("fip").get(fip_id)
    if fip is None:
        raise fail(f"Floating IP {fip_id} could not be found", 404, "FloatingIPNotFound")
    return fip


async def get_fip(request: web.Request) -> web.Response:
    return ok({"floatingip": _fip(emulator(request).cloud, request.match_info["id"])})


async def update_fip(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    fip = _fip(cloud, request.match_info["id"])
    spec = (await json_body(request, fail)).get("floatingip") or {}
    port_id, fixed = _fip_port(cloud, spec.get("port_id"))
    fip = {**fip, "port_id": port_id, "fixed_ip_address": fixed, "status": "ACTIVE" if port_id else "DOWN"}
    cloud.save("fip", fip)
    _changed(cloud, fip)
    return ok({"floatingip": fip})


async def delete_fip(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    fip = _fip(cloud, request.match_info["id"])
    cloud.drop("fip", fip["id"])
    _changed(cloud, fip)
    return no_content()


def _changed(cloud: Cloud, fip: dict[str, Any]) -> None:
    if cloud.on_fip_change is not None:
        cloud.on_fip_change(fip)


async def security_groups(request: web.Request) -> web.Response:
    return ok({"security_groups": _filtered(request, list(emulator(request).cloud.all("secgroup").values()))})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/networks", networks)
    r.add_get(f"{PREFIX}/networks/{{id}}", network)
    r.add_get(f"{PREFIX}/subnets", subnets)
    r.add_get(f"{PREFIX}/ports", ports)
    r.add_post(f"{PREFIX}/ports", create_port)
    r.add_delete(f"{PREFIX}/ports/{{id}}", delete_port)
    r.add_get(f"{PREFIX}/floatingips", floating_ips)
    r.add_post(f"{PREFIX}/floatingips", create_fip)
    r.add_get(f"{PREFIX}/floatingips/{{id}}", get_fip)
    r.add_put(f"{PREFIX}/floatingips/{{id}}", update_fip)
    r.add_delete(f"{PREFIX}/floatingips/{{id}}", delete_fip)
    r.add_get(f"{PREFIX}/security-groups", security_groups)
