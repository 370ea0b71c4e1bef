"""Small HTTP helpers shared by the endpoint modules: JSON answers, bodies, routing with the
`/stable`, `/3.0`, `/sid` and bare prefixes, and the caller's identity."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qs

from aiohttp import web

from .errors import NOT_AUTHORIZED, ApiError

if TYPE_CHECKING:
    from .clock import Clock
    from .deployments import Deployments
    from .jobs import Jobs
    from .kavlan import Kavlan
    from .reference import Platform

PREFIXES = ("/stable", "/3.0", "/sid", "")

# Typed storage keys (aiohttp warns about plain strings); RequestKey exists from aiohttp 3.12 on.
# Each endpoint module reads the components it serves, never the whole emulator.
PLATFORM: web.AppKey[Platform] = web.AppKey("platform")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
JOBS: web.AppKey[Jobs] = web.AppKey("jobs")
DEPLOYMENTS: web.AppKey[Deployments] = web.AppKey("deployments")
KAVLAN: web.AppKey[Kavlan] = web.AppKey("kavlan")
_RequestKey = getattr(web, "RequestKey", None)
PREFIX_KEY: Any = _RequestKey("prefix", str) if _RequestKey else "prefix"
USER_KEY: Any = _RequestKey("user", str) if _RequestKey else "user"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json", headers=headers)


def collection(items: list[Any], base_path: str, total: int | None = None, offset: int = 0, **extra: Any) -> dict[str, Any]:
    body = {
        "total": len(items) if total is None else total,
        "offset": offset,
        "items": items,
        "links": [{"rel": "self", "href": base_path, "type": "application/vnd.grid5000.collection+json"}],
    }
    body.update(extra)
    return body


def add(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register `path` under every API prefix; the template (without prefix) names the route
    in the call counter."""
    for prefix in PREFIXES:
        app.router.add_route(method, prefix + path, handler, name=None)


def base(request: web.Request) -> str:
    """The version prefix the caller used (woven into links, as the real proxy does)."""
    return request.get(PREFIX_KEY, "/stable")


def site_of(request: web.Request) -> str:
    """The `{site}` of the path, or the real API's 404 for a site it does not know."""
    site = request.match_info["site"]
    if site not in request.app[PLATFORM].sites:
        raise ApiError(404, f"Cannot find resource /sites/{site}")
    return site


def user(request: web.Request) -> str:
    return request.get(USER_KEY, "anonymous")


def writer(request: web.Request) -> str:
    """The caller, who must be a real user to change anything (anonymous writes → 403)."""
    name = user(request)
    if not name or name == "anonymous":
        raise ApiError(403, NOT_AUTHORIZED)
    return name


async def body(request: web.Request) -> Any:
    """The request body: JSON (the clients' form) or form-encoded (the real API accepts both)."""
    raw = await request.read()
    ctype = request.content_type
    if not raw:
        return {}
    if ctype == "application/x-www-form-urlencoded":
        parsed = parse_qs(raw.decode(errors="replace"))
        out: dict[str, Any] = {}
        for key, values in parsed.items():
            if key.endswith("[]"):
                out[key[:-2]] = values
            else:
                out[key] = values[-1]
        return out
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Bad Request: the body is not valid JSON") from None


def query(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.query.items()}
