"""Keystone v3: version discovery, and `POST /v3/auth/tokens` for password and application-
credential authentication. The token's catalog is built from the request's own host, so
`OS_AUTH_URL` alone sends every later call back to this emulator."""

from __future__ import annotations

import secrets
from typing import Any, Optional

from aiohttp import web

from . import errors, inventory, timefmt
from .cloud import AppCredential, Cloud, User
from .httputil import base_url, emulator, json_body, ok, token

SERVICES = (
    ("identity", "keystone", "/v3"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("reservation", "blazar", "/reservation/v1"),
)
ROLE = {"id": inventory.stable_id("role", "member"), "name": "member"}
DOMAIN = {"id": "default", "name": "Default"}


def version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


def catalog(base: str, region: str) -> list[dict[str, Any]]:
    out = []
    for kind, name, path in SERVICES:
        out.append(
            {
                "id": inventory.stable_id("service", name),
                "type": kind,
                "name": name,
                "endpoints": [
                    {
                        "id": inventory.stable_id("endpoint", region, name, interface),
                        "interface": interface,
                        "region": region,
                        "region_id": region,
                        "url": base + path,
                    }
                    for interface in ("public", "internal")
                ],
            }
        )
    return out


def _domain_ok(spec: Any, domain: str) -> bool:
    """A user or project domain given by name or id (absent: the default domain)."""
    if not isinstance(spec, dict):
        return spec is None
    if "name" in spec:
        return bool(spec["name"] == domain)
    if "id" in spec:
        return bool(spec["id"] in ("default", domain))
    return True


def _find_user(cloud: Cloud, spec: Any) -> Optional[User]:
    if not isinstance(spec, dict):
        return None
    for user in cloud.config.users:
        if (spec.get("name") == user.name or spec.get("id") == user.id) and _domain_ok(spec.get("domain"), cloud.config.domain):
            return user
    return None


def _password(cloud: Cloud, identity: dict[str, Any]) -> User:
    user_spec = (identity.get("password") or {}).get("user")
    user = _find_user(cloud, user_spec)
    if user is None or not isinstance(user_spec, dict) or user_spec.get("password") != user.password:
        raise errors.unauthorized()
    return user


def _app_credential(cloud: Cloud, identity: dict[str, Any]) -> tuple[User, AppCredential]:
    spec = identity.get("application_credential") or {}
    found = None
    for cred in cloud.config.app_credentials:
        if spec.get("id") == cred.id:
            found = cred
        elif "id" not in spec and spec.get("name") == cred.name:
            owner = _find_user(cloud, spec.get("user"))
            if owner is not None and owner.name == cred.user:
                found = cred
    if found is None or spec.get("secret") != found.secret:
        raise errors.unauthorized()
    user = next((u for u in cloud.config.users if u.name == found.user), None) or User(found.user, "")
    return user, found


def _check_scope(cloud: Cloud, scope: Any) -> None:
    """Only the one project exists; another (or a domain/system scope) is refused as Keystone
    refuses a project the user has no role on."""
    if not scope:
        return
    project = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(project, dict):
        raise errors.keystone(401, "The request you have made requires authentication.")
    if project.get("id") == cloud.config.project_id:
        return
    if project.get("name") == cloud.config.project and _domain_ok(project.get("domain"), cloud.config.domain):
        return
    raise errors.keystone(401, f"User has no access to project {project.get('name') or project.get('id')}")


def issue(cloud: Cloud, body: dict[str, Any]) -> dict[str, Any]:
    """Check the credentials in a token request and record the new token."""
    auth = body.get("auth")
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise errors.keystone(
            400,
            "Expecting to find identity in auth. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.",
        )
    identity = auth["identity"]
    methods = identity.get("methods") or []
    cred: Optional[AppCredential] = None
    if "password" in methods:
        user = _password(cloud, identity)
        _check_scope(cloud, auth.get("scope"))
    elif "application_credential" in methods:
        user, cred = _app_credential(cloud, identity)
    else:
        raise errors.unauthorized()
    now = cloud.now()
    tok = {
        "id": "gAAAAA" + secrets.token_urlsafe(48),
        "user": user.name,
        "user_id": user.id,
        "methods": ["application_credential"] if cred else ["password"],
        "issued": now,
        "expires": now + cloud.config.token_lifetime,
        "audit_id": secrets.token_urlsafe(16)[:22],
        "app_credential": {"id": cred.id, "name": cred.name} if cred else None,
    }
    cloud.save("token", tok)
    return tok


def validate(cloud: Cloud, token_id: Optional[str]) -> dict[str, Any]:
    tok = cloud.all("token").get(token_id or "")
    if tok is None or tok["expires"] <= cloud.now():
        raise errors.unauthorized()
    return tok


def token_body(cloud: Cloud, tok: dict[str, Any], base: str) -> dict[str, Any]:
    cfg = cloud.config
    body: dict[str, Any] = {
        "methods": tok["methods"],
        "user": {"id": tok["user_id"], "name": tok["user"], "domain": DOMAIN, "password_expires_at": None},
        "project": {"id": cfg.project_id, "name": cfg.project, "domain": DOMAIN},
        "roles": [ROLE],
        "is_domain": False,
        "audit_ids": [tok["audit_id"]],
        "issued_at": timefmt.keystone(tok["issued"]),
        "expires_at": timefmt.keystone(tok["expires"]),
        "catalog": catalog(base, cfg.region),
    }
    if tok.get("app_credential"):
        body["application_credential"] = {**tok["app_credential"], "restricted": True}
    return {"token": body}


async def discovery(request: web.Request) -> web.Response:
    return ok({"version": version_doc(base_url(request))})


async def root(request: web.Request) -> web.Response:
    return ok({"versions": {"values": [version_doc(base_url(request))]}}, status=300)


async def create_token(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    tok = issue(cloud, await json_body(request, lambda m: errors.keystone(400, m)))
    return ok(token_body(cloud, tok, base_url(request)), 201, {"X-Subject-Token": tok["id"]})


async def check_token(request: web.Request) -> web.Response:
    """`GET /v3/auth/tokens`: validate the X-Subject-Token (with the caller's own token)."""
    cloud = emulator(request).cloud
    token(request)
    subject = validate(cloud, request.headers.get("X-Subject-Token"))
    return ok(token_body(cloud, subject, base_url(request)), 200, {"X-Subject-Token": subject["id"]})


async def revoke_token(request: web.Request) -> web.Response:
    cloud = emulator(request).cloud
    subject = validate(cloud, request.headers.get("X-Subject-Token"))
    cloud.drop("token", subject["id"])
    return web.Response(status=204)


PUBLIC_ROUTES = {("GET", "/v3"), ("GET", "/v3/"), ("GET", "/"), ("POST", "/v3/auth/tokens")}


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", root)
    r.add_get("/v3", discovery)
    r.add_get("/v3/", discovery)
    r.add_post("/v3/auth/tokens", create_token)
    r.add_get("/v3/auth/tokens", check_token)
    r.add_delete("/v3/auth/tokens", revoke_token)
