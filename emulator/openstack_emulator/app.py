"""The emulator's aiohttp application: one port for every service (path prefixes as in the
catalog), a middleware that turns ApiError into the service's own error body and checks
`X-Auth-Token` on every route but discovery and token creation, and the `/_emulator/` control
routes (clock) that tests drive. Served: Keystone, Glance, Blazar, Nova and Neutron; ACTIVE servers are real
hosts with `hosts=True` (hosts.py); the CLI and fault injection are still to come."""

from __future__ import annotations

import logging
from typing import Any, Optional

from aiohttp import web

from g5k_emulator.clock import Clock
from g5k_emulator.store import Store

from . import blazar, errors, glance, keystone, neutron, nova
from .cloud import Cloud, Config
from .httputil import EMULATOR, TOKEN_KEY, Handler, ok

_log = logging.getLogger("openstack_emulator")
# Discovery documents clients read before they hold a token.
PUBLIC_PREFIXES = ("/_emulator/",)
PUBLIC_PATHS = {"/image", "/image/", "/image/versions", "/compute", "/compute/", "/compute/v2.1", "/compute/v2.1/"}


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        public = (
            (request.method, request.path) in keystone.PUBLIC_ROUTES
            or request.path in PUBLIC_PATHS
            or request.path.startswith(PUBLIC_PREFIXES)
        )
        if not public:
            request[TOKEN_KEY] = keystone.validate(request.app[EMULATOR].cloud, request.headers.get("X-Auth-Token"))
        return await handler(request)
    except errors.ApiError as err:
        return err.response()


async def clock(request: web.Request) -> web.Response:
    """`GET`: the emulated time; `POST {"advance": s}`: jump forward (tests drive time so)."""
    emu = request.app[EMULATOR]
    if request.method == "POST":
        body = await request.json()
        try:
            emu.clock.advance(float(body.get("advance", 0)))
        except (TypeError, ValueError) as err:
            return ok({"error": str(err)}, 400)
    return ok({"now": emu.clock.now(), "speed": emu.clock.speed})


async def ssh(request: web.Request) -> web.Response:
    """How clients reach the servers and log in to the cloud (for test harnesses and users)."""
    emu = request.app[EMULATOR]
    cred = emu.config.app_credentials[0]
    return ok(
        {
            "proxyCommand": emu.hosts.proxy_command if emu.hosts is not None else None,
            "user": "root",
            "authUrl": f"{emu.url}/v3",
            "region": emu.config.region,
            "applicationCredentialId": cred.id,
        }
    )


async def objects(request: web.Request) -> web.Response:
    """How many objects of each kind exist (tests check nothing is left behind)."""
    cloud = request.app[EMULATOR].cloud
    return ok({kind: len(cloud.all(kind)) for kind in ("lease", "server", "port", "fip", "keypair")})


class Emulator:
    def __init__(
        self,
        config: Optional[Config] = None,
        state: Optional[str] = None,
        clock_speed: float = 1.0,
        bind: str = "127.0.0.1",
        hosts: bool = False,
        run_dir: Optional[str] = None,
    ) -> None:
        self.config = config or Config()
        self.clock = Clock(clock_speed)
        self.store = Store(state)
        self.cloud = Cloud(self.config, self.store, self.clock)
        self.bind = bind
        self.url = ""
        self._runner: Optional[web.AppRunner] = None
        self.hosts: Optional[Any] = None
        if hosts:
            from .hosts import Hosts

            self.hosts = Hosts(self.cloud, run_dir)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[middleware])
        app[EMULATOR] = self
        keystone.add_routes(app)
        glance.add_routes(app)
        blazar.add_routes(app)
        nova.add_routes(app)
        neutron.add_routes(app)
        app.router.add_route("*", "/_emulator/clock", clock)
        app.router.add_get("/_emulator/ssh", ssh)
        app.router.add_get("/_emulator/objects", objects)
        return app

    async def start(self, port: int = 0) -> None:
        if self.hosts is not None:
            await self.hosts.start()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, port)
        await site.start()
        server: Any = site._server
        bound = server.sockets[0].getsockname()[1]
        self.url = f"http://{self.bind}:{bound}"
        _log.info("listening on %s (Keystone at %s/v3)", self.url, self.url)

    async def stop(self) -> None:
        if self.hosts is not None:
            await self.hosts.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()
