"""HTTP helpers shared by the service modules: JSON answers and bodies, the caller's token,
the request's own base URL (the catalog points back at whatever host the client used)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from .errors import ApiError

if TYPE_CHECKING:
    from .app import Emulator

EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator")
_RequestKey = getattr(web, "RequestKey", None)
TOKEN_KEY: Any = _RequestKey("token", dict) if _RequestKey else "token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR]


def token(request: web.Request) -> dict[str, Any]:
    """The caller's validated token (set by the middleware on every authenticated route)."""
    found: dict[str, Any] = request[TOKEN_KEY]
    return found


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


async def json_body(request: web.Request, error: Callable[[str], ApiError]) -> dict[str, Any]:
    """The JSON object in the body, or the service's own 400."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise error("Malformed request body: not JSON") from None
    if not isinstance(data, dict):
        raise error("Malformed request body: a JSON object is expected")
    return data


def query_value(request: web.Request, name: str) -> str | None:
    """A query value, with the sdk's literal `None` (e.g. `is_public=None`) treated as absent."""
    value = request.query.get(name)
    return None if value in (None, "", "None") else value
