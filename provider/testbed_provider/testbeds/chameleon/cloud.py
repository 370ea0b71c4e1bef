"""One OpenStack connection per operation: openstacksdk for Keystone, Nova, Neutron and Glance,
python-blazarclient for Blazar on the same keystoneauth session (one token for both).

Every blocking call runs in a thread so the gRPC server stays responsive; idempotent calls are
retried here on 5xx, timeouts and refused connections, with back-off that stops at once on
Cancel. Creating calls (POST) are retried only when the request certainly had no effect.
Refused credentials are never retried: keystoneauth already re-authenticates once when a token
expires, so a 401 that reaches us means the credentials themselves are refused. `calls`
counts requests per service and kind, for the benchmarks.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from typing import Any, Callable, Optional, TypeVar

from ...common import deadlines
from ...common.deadlines import Cancelled as Cancelled
from ...protocol.redact import REDACTOR
from .settings import ChameleonSettings, cloud_region

_log = logging.getLogger("testbed_provider.chameleon")
T = TypeVar("T")
TRANSIENT_CODES = {500, 502, 503, 504}
API_TIMEOUT = 30.0


class CloudError(Exception):
    """An OpenStack call failed; the message quotes the service's reason (never a traceback)."""

    def __init__(self, message: str, status: Optional[int] = None, reason: str = "") -> None:
        super().__init__(REDACTOR.scrub(message))
        self.status = status
        self.reason = REDACTOR.scrub(reason)


def describe(err: BaseException) -> tuple[Optional[int], str]:
    """(HTTP status, the service's reason) of an openstacksdk, keystoneauth or blazarclient error."""
    code = getattr(err, "status_code", None) or getattr(err, "http_status", None)
    kwargs = getattr(err, "kwargs", None)
    if code is None and isinstance(kwargs, dict):
        code = kwargs.get("code")  # blazarclient: the class attribute `code` is always 500
    # openstacksdk's HttpException carries the service's text in `details`; blazarclient's
    # `message` is a class template ("An unknown exception occurred %s."), its str() the text.
    reason = str(getattr(err, "details", None) or str(err) or type(err).__name__)
    if reason.startswith("ERROR: "):
        reason = reason[len("ERROR: ") :]
    return (int(code) if isinstance(code, int) else None), " ".join(reason.split())[:2000]


def _is_connection(err: BaseException) -> bool:
    from keystoneauth1 import exceptions as ka

    return isinstance(err, (ka.ConnectionError, ka.ConnectTimeout, ka.connection.ConnectFailure))


def is_transient(err: BaseException) -> bool:
    from keystoneauth1 import exceptions as ka

    if _is_connection(err) or isinstance(err, ka.RetriableConnectionFailure):
        return True
    return describe(err)[0] in TRANSIENT_CODES


def is_unprocessed(err: BaseException) -> bool:
    """The request certainly did not take effect: 503, or no connection made."""
    from keystoneauth1 import exceptions as ka

    if isinstance(err, ka.ConnectFailure) and not isinstance(err, ka.ConnectTimeout):
        return True
    return describe(err)[0] == 503


def is_refused(err: BaseException) -> bool:
    from keystoneauth1 import exceptions as ka

    seen: Optional[BaseException] = err
    while seen is not None:  # openstacksdk wraps keystoneauth's refusal in an SDKException
        if isinstance(seen, (ka.Unauthorized, ka.AuthorizationFailure, ka.MissingAuthPlugin)) or describe(seen)[0] == 401:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Cloud:
    def __init__(
        self,
        settings: ChameleonSettings,
        stop: Optional[asyncio.Event] = None,
        attempts: int = 5,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
        timeout: float = API_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.stop = stop or asyncio.Event()
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.calls: collections.Counter[str] = collections.Counter()
        self._conn: Any = None
        self._blazar: Any = None
        self._clock: Optional[tuple[dt.datetime, float]] = None  # (the cloud's time, our monotonic time) of one reading

    @property
    def conn(self) -> Any:
        if self._conn is None:
            import openstack.connection

            region = cloud_region(self.settings)
            region.config["api_timeout"] = self.timeout
            self._conn = openstack.connection.Connection(config=region)
        return self._conn

    @property
    def blazar(self) -> Any:
        if self._blazar is None:
            from blazarclient import client

            self._blazar = client.Client(
                1,
                session=self.conn.session,
                service_type="reservation",
                interface=self.conn.config.get_interface() or "public",
                region_name=self.settings.region or None,
            )
        return self._blazar

    async def sleep(self, seconds: float) -> None:
        await deadlines.sleep(seconds, self.stop)

    async def call(self, what: str, fn: Callable[..., T], *args: Any, retry: bool | str = True, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` in a thread; retry transient failures when `retry` is True,
        only failures that certainly had no effect when it is "unprocessed" (creating calls).
        Raises CloudError naming `what` and quoting the service."""
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            self.calls[what.split(" ")[0]] += 1
            started = time.monotonic()
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except Exception as err:  # noqa: BLE001 - mapped to CloudError below
                code, reason = describe(err)
                if is_refused(err):
                    raise CloudError(
                        f"{what}: the OpenStack cloud at {self.settings.auth_url} refused the credentials from "
                        f"{self.settings.source} (HTTP 401: {reason}); renew the application credential or check "
                        "`testbed:chameleon*`",
                        401,
                        reason,
                    ) from None
                transient = is_unprocessed(err) if retry == "unprocessed" else is_transient(err)
                _log.debug("%s failed after %.1fs (attempt %d): %s", what, time.monotonic() - started, attempt, reason)
                if not (retry and transient) or attempt == self.attempts or self.stop.is_set():
                    status = f"HTTP {code}: " if code else ""
                    hint = "" if code else f" (is the cloud at {self.settings.auth_url} reachable?)"
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise CloudError(f"{what} failed{tries}: {status}{reason}{hint}", code, reason) from None
            await self.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")

    async def now(self) -> dt.datetime:
        """The cloud's time (UTC): Blazar's dates are the cloud's, whose clock need not be ours
        (an emulator's runs fast). Read from the token's `issued_at`, then carried forward."""
        if self._clock is None:

            def issued() -> Optional[dt.datetime]:
                access = self.conn.session.auth.get_access(self.conn.session)
                return getattr(access, "issued", None)

            when = await self.call("authenticating", issued)
            if when is None:
                when = dt.datetime.now(dt.timezone.utc)
            self._clock = (when.astimezone(dt.timezone.utc), time.monotonic())
        base, at = self._clock
        return base + dt.timedelta(seconds=time.monotonic() - at)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
