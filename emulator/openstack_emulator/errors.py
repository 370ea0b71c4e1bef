"""Errors in each service's own JSON shape, so the real clients parse them as they would
parse Chameleon's (Keystone `error`, Nova `badRequest`/`itemNotFound`, Neutron `NeutronError`,
Blazar `error_code`/`error_message`)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

NOVA_KINDS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest"}
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}
UNAUTHORIZED = "The request you have made requires authentication."


class ApiError(Exception):
    """Raised anywhere in a handler; the middleware turns it into its JSON response."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(json.dumps(body))
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> web.Response:
        if isinstance(self.body, str):
            return web.Response(status=self.status, text=self.body, content_type="text/plain", headers=self.headers)
        return web.Response(status=self.status, text=json.dumps(self.body), content_type="application/json", headers=self.headers)


def keystone(status: int, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": status, "message": message, "title": TITLES.get(status, "Error")}})


def unauthorized() -> ApiError:
    return ApiError(
        401, {"error": {"code": 401, "message": UNAUTHORIZED, "title": "Unauthorized"}}, {"WWW-Authenticate": 'Keystone uri="/v3"'}
    )


def nova(status: int, message: str) -> ApiError:
    return ApiError(status, {NOVA_KINDS.get(status, "computeFault"): {"code": status, "message": message}})


def neutron(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


def glance(status: int, message: str) -> ApiError:
    """Glance answers errors as an HTML-ish text page; a plain text line is what clients read."""
    return ApiError(status, f"{status} {TITLES.get(status, 'Error')}\n\n{message}\n\n")


def blazar(status: int, message: str) -> ApiError:
    """Blazar's `render_error_message`: error_name is the code again for its own exceptions."""
    return ApiError(status, {"error_code": status, "error_message": message, "error_name": status})
