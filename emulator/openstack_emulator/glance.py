"""Glance v2: version discovery (300, as Glance answers an unversioned URL), image list with
the `name`/`visibility`/`status` filters (other query values ignored) and image get."""

from __future__ import annotations

from aiohttp import web

from . import errors
from .httputil import base_url, emulator, ok, query_value

FILTERS = ("name", "visibility", "status", "id", "disk_format", "container_format", "owner")


async def versions(request: web.Request) -> web.Response:
    base = base_url(request)
    values = [
        {"id": v, "status": "CURRENT" if v == "v2.16" else "SUPPORTED", "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}
        for v in ("v2.16", "v2.15", "v2.9", "v2.0")
    ]
    return ok({"versions": values}, status=300)


async def list_images(request: web.Request) -> web.Response:
    images = list(emulator(request).cloud.images.values())
    for key in FILTERS:
        wanted = query_value(request, key)
        if wanted is None or (key == "visibility" and wanted == "all"):
            continue
        if wanted.startswith("in:"):
            choices = set(wanted[3:].split(","))
            images = [i for i in images if str(i.get(key)) in choices]
        else:
            images = [i for i in images if str(i.get(key)) == wanted]
    images.sort(key=lambda i: i["name"])
    return ok({"images": images, "first": "/v2/images", "schema": "/v2/schemas/images"})


async def get_image(request: web.Request) -> web.Response:
    image = emulator(request).cloud.images.get(request.match_info["image_id"])
    if image is None:
        raise errors.glance(404, f"No image found with ID {request.match_info['image_id']}")
    return ok(image)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/image", versions)
    r.add_get("/image/", versions)
    r.add_get("/image/versions", versions)
    r.add_get("/image/v2/images", list_images)
    r.add_get("/image/v2/images/{image_id}", get_image)
