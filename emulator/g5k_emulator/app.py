"""The emulator: one aiohttp application serving the real API paths (under `/stable`, `/3.0`,
`/sid` and bare) and the control API under `/_emulator/`, plus the background task that moves
jobs and deployments along the emulated clock."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from aiohttp import web

from . import deployments, jobs, kavlan, sites
from .clock import Clock
from .errors import ApiError, response
from .faults import STATUS_TEXT, Faults
from .httputil import CLOCK, DEPLOYMENTS, JOBS, KAVLAN, PLATFORM, PREFIX_KEY, PREFIXES, USER_KEY, body, ok
from .reference import build_platform
from .store import Store

if TYPE_CHECKING:
    from .hosts import Hosts

log = logging.getLogger("g5k_emulator")
TICK = 0.1  # real seconds between two background scheduler passes
CLOCK_SAVE = 1.0  # real seconds between two saves of the emulated time


class User:
    def __init__(self, name: str, password: str, public_keys: Optional[list[str]] = None):
        self.name = name
        self.password = password
        self.public_keys = public_keys or []


def parse_user(spec: str) -> User:
    """`NAME:PASSWORD[:PUBKEYFILE]` → User (the key file's lines are the user's registered keys)."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError(f"a user is NAME:PASSWORD[:PUBKEYFILE], got {spec!r}")
    keys: list[str] = []
    if len(parts) == 3 and parts[2]:
        with open(parts[2]) as f:
            keys = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    return User(parts[0], parts[1], keys)


class Emulator:
    """The whole emulator; `await start()` serves it, `await stop()` tears everything down."""

    def __init__(
        self,
        state: Optional[str] = None,
        clock_speed: float = 1.0,
        users: Optional[list[User]] = None,
        hosts: bool = False,
        bind: str = "127.0.0.1",
        run_dir: Optional[str] = None,
        deploy_seconds: float = 180.0,
    ):
        self.platform = build_platform()
        self.store = Store(state)
        saved = self.store.get("meta", "clock")
        self.clock = Clock(clock_speed, saved["now"] if saved else None)
        self.users = {u.name: u for u in (users or [User("alice", "x")])}
        self.bind = bind
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self.jobs = jobs.Jobs(self.platform, self.clock, self.store)
        self.kavlan = kavlan.Kavlan(self.platform, self.store, self.jobs)
        self.deployments = deployments.Deployments(self.platform, self.clock, self.store, self.jobs, self.kavlan, deploy_seconds)
        self._forget_host_work()
        self.hosts: Optional[Hosts] = None
        if hosts:
            from .hosts import Hosts  # the host toolkit, imported only when hosts are wanted

            self.hosts = Hosts(self.platform, self.store, self.clock, self.jobs, self.deployments, self.kavlan, self.public_keys, run_dir)
            self.jobs.on_launch = self.hosts.up
            self.deployments.on_reinstall = self.hosts.reinstall
            self.kavlan.on_move = self.hosts.move
        self.jobs.on_end = self._job_ended
        self.port: Optional[int] = None
        self._runner: Optional[web.AppRunner] = None
        self._ticker: Optional[asyncio.Task[None]] = None
        self._last_clock_save = 0.0

    def _forget_host_work(self) -> None:
        """Host work in flight when the last process stopped died with it (hosts are rebuilt
        from scratch at start), so nothing may wait for it any more."""
        for job in self.jobs.jobs.values():
            if job.pop("hosts_busy", None) is not None:
                self.jobs.save(job)
        for dep in self.deployments.items.values():
            if dep.pop("hosts_busy", None) is not None:
                self.deployments.save(dep)

    def public_keys(self, user: str) -> list[str]:
        """The keys `user` registered (root accepts them on that user's undeployed nodes)."""
        found = self.users.get(user)
        return found.public_keys if found else []

    def _job_ended(self, job: dict[str, Any]) -> None:
        self.kavlan.release(job)
        if self.hosts is not None:
            self.hosts.down(job)

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}/stable"

    @property
    def root_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    # ---- life cycle ----------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        if self.hosts is not None:
            await self.hosts.start()
        self.tick()
        app = self.make_app()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ticker = asyncio.create_task(self._tick_forever())
        log.info("serving the Grid'5000 API emulator at %s (clock speed %s)", self.url, self.clock.speed)

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        self.save_clock()
        if self.hosts is not None:
            await self.hosts.stop()
        self.store.close()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive one bad pass
                log.exception("scheduler pass failed")

    def tick(self) -> None:
        self.jobs.tick()
        self.deployments.tick()
        now = time.monotonic()
        if now - self._last_clock_save >= CLOCK_SAVE:
            self._last_clock_save = now
            self.save_clock()

    def save_clock(self) -> None:
        self.store.put("meta", "clock", {"now": self.clock.now(), "speed": self.clock.speed})

    # ---- the application -----------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 * 1024**2)
        app[PLATFORM], app[CLOCK], app[JOBS] = self.platform, self.clock, self.jobs
        app[DEPLOYMENTS], app[KAVLAN] = self.deployments, self.kavlan
        self._control_routes(app)
        sites.add_routes(app)
        jobs.add_routes(app)
        deployments.add_routes(app)
        kavlan.add_routes(app)
        return app

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization")
        if header:
            scheme, _, value = header.partition(" ")
            try:
                name, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                name, password = "", ""
            user = self.users.get(name)
            if scheme.lower() != "basic" or user is None or user.password != password:
                raise ApiError(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Grid5000 API"'})
            return name
        cn = request.headers.get("X-Api-User-CN")  # the identity header of G5k's internal proxy
        if cn:
            return cn
        raise ApiError(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Grid5000 API"'})

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_emulator"):
            try:
                return await handler(request)
            except ApiError as err:
                return response(err)
        prefix = next((p for p in PREFIXES if p and (path == p or path.startswith(p + "/"))), "")
        request[PREFIX_KEY] = prefix or ""
        route = request.match_info.route
        template = route.resource.canonical if route.resource is not None else path
        if prefix and template.startswith(prefix):
            template = template[len(prefix) :] or "/"
        self.calls[f"{request.method} {template}"] += 1
        try:
            for rule in self.faults.take(request.method, path[len(prefix) :] or "/"):
                if rule.latency:
                    await asyncio.sleep(rule.latency)
                if rule.status:
                    raise ApiError(rule.status, STATUS_TEXT[rule.status])
            request[USER_KEY] = self._authenticate(request)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a scheduler bug must not turn every call into a 500
                log.exception("scheduler pass failed")
            return await handler(request)
        except ApiError as err:
            return response(err)
        except web.HTTPException as exc:
            if exc.status == 404:
                return response(ApiError(404, f"Cannot find resource {path[len(prefix) :]}"))
            if exc.status == 405:
                return response(ApiError(405, "Method Not Allowed"))
            raise

    # ---- control API ---------------------------------------------------------------------

    def _control_routes(self, app: web.Application) -> None:
        async def clock_get(request: web.Request) -> web.Response:
            return ok(self.clock_info())

        async def clock_post(request: web.Request) -> web.Response:
            data = await body(request)
            if not isinstance(data, dict):
                raise ApiError(422, "a JSON object with `speed` and/or `advance` is expected")
            try:
                if data.get("speed") is not None:
                    self.clock.set_speed(float(data["speed"]))
                if data.get("advance") is not None:
                    self.clock.advance(float(data["advance"]))
            except (TypeError, ValueError) as err:
                raise ApiError(422, str(err)) from None
            self.tick()
            self.save_clock()
            return ok(self.clock_info())

        async def faults_get(request: web.Request) -> web.Response:
            return ok({"items": [r.describe() for r in self.faults.rules]})

        async def faults_post(request: web.Request) -> web.Response:
            data = await body(request)
            specs = data if isinstance(data, list) else [data]
            rules = [self.faults.add(s) for s in specs]
            return ok({"items": [r.describe() for r in rules]}, 201)

        async def faults_delete(request: web.Request) -> web.Response:
            self.faults.clear()
            return web.Response(status=204)

        async def kill(request: web.Request) -> web.Response:
            site = request.match_info["site"]
            job = self.jobs.kill_from_outside(site, request.match_info["uid"])
            return ok(self.jobs.api_object(job, "/stable"))

        async def hold(request: web.Request) -> web.Response:
            held = request.path.endswith("/hold")
            job = self.jobs.hold(request.match_info["site"], request.match_info["uid"], held)
            return ok(self.jobs.api_object(job, "/stable"))

        async def deploy_failures(request: web.Request) -> web.Response:
            data = await body(request)
            return ok(self.deployments.add_failures(data), 201)

        async def deploy_failures_delete(request: web.Request) -> web.Response:
            self.deployments.failures.clear()
            self.deployments.errors.clear()
            return web.Response(status=204)

        async def calls_get(request: web.Request) -> web.Response:
            return ok({"total": sum(self.calls.values()), "calls": dict(sorted(self.calls.items()))})

        async def calls_delete(request: web.Request) -> web.Response:
            self.calls.clear()
            return web.Response(status=204)

        async def ssh(request: web.Request) -> web.Response:
            if self.hosts is None:
                return ok({"proxyCommand": None, "user": "root", "hosts": False})
            return ok(self.hosts.ssh_info())

        async def nodes(request: web.Request) -> web.Response:
            if self.hosts is None:
                return ok({"items": []})
            return ok({"items": self.hosts.describe()})

        r = app.router
        r.add_get("/_emulator/clock", clock_get)
        r.add_post("/_emulator/clock", clock_post)
        r.add_get("/_emulator/faults", faults_get)
        r.add_post("/_emulator/faults", faults_post)
        r.add_delete("/_emulator/faults", faults_delete)
        r.add_post("/_emulator/sites/{site}/jobs/{uid}/kill", kill)
        r.add_post("/_emulator/sites/{site}/jobs/{uid}/hold", hold)
        r.add_post("/_emulator/sites/{site}/jobs/{uid}/resume", hold)
        r.add_post("/_emulator/deploy-failures", deploy_failures)
        r.add_delete("/_emulator/deploy-failures", deploy_failures_delete)
        r.add_get("/_emulator/calls", calls_get)
        r.add_delete("/_emulator/calls", calls_delete)
        r.add_get("/_emulator/ssh", ssh)
        r.add_get("/_emulator/nodes", nodes)

    def clock_info(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"now": now, "speed": self.clock.speed, "paris": jobs.paris(now), "pid": os.getpid()}
