"""Errors answered as the real API does: `text/plain` one-liners with the real status codes."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(Exception):
    """Raised anywhere in a handler; the app turns it into a text/plain response."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or {}


def response(err: ApiError) -> web.Response:
    return web.Response(status=err.status, text=err.text, content_type="text/plain", headers=err.headers)


def oar_url(site: str) -> str:
    return f"https://oar-api.{site}.grid5000.fr/sites/{site}/internal/oarapi/jobs.json"


def relayed(status: int, internal_url: str, body: str) -> ApiError:
    """An error relayed from OAR/Kadeploy/KaVLAN: `Request to <url> failed with status N: <body>`."""
    return ApiError(status, f"Request to {internal_url} failed with status {status}: {body}")


def oar_refusal(site: str, status: int, message: str, title: str = "Bad query") -> ApiError:
    """oarsub's output in oarapi's JSON `{code, message, title}`, wrapped by g5k-api."""
    body = json.dumps({"code": status, "message": message, "title": title})
    return relayed(status, oar_url(site), body)


NOT_AUTHORIZED = "You are not authorized to access this resource"
