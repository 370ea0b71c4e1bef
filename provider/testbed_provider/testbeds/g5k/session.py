"""One python-grid5000 client per operation, with our own retries, back-off and call counting.

python-grid5000 mounts urllib3 retries (GET/DELETE on 500/502/504, ~9 s, then a RetryError
that is not a Grid5000 error) and has no request timeout by default. We replace its HTTP session
by a plain one and retry here instead: idempotent calls on 5xx, timeouts and connection errors,
with exponential back-off that stops at once on Cancel/timeout. POSTs are never retried blindly
(a job could be submitted twice); callers that POST handle ambiguity themselves.

Every blocking call runs in a thread (asyncio.to_thread) so the gRPC server stays responsive,
and `calls` counts requests per kind so tests can assert there is no polling storm.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable, Optional, TypeVar

from ...common import deadlines
from ...common.deadlines import Cancelled as Cancelled  # the operation was stopped (engine Cancel or customTimeouts) while waiting
from .settings import G5kSettings

_log = logging.getLogger("testbed_provider.g5k")
T = TypeVar("T")

TRANSIENT_CODES = {500, 502, 503, 504}


class G5kError(Exception):
    """A Grid'5000 call failed; the message quotes the API's reason (never a traceback).

    `status` is the HTTP code (None for network errors), `reason` the API's text."""

    def __init__(self, message: str, status: Optional[int] = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def describe(err: BaseException) -> tuple[Optional[int], str]:
    """(HTTP status, the API's reason text) of a python-grid5000/requests error."""
    code = getattr(err, "response_code", None)
    message = getattr(err, "error_message", None)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    if message is None:
        message = str(err)
    return code, " ".join(str(message).split())[:2000]


def is_unprocessed(err: BaseException) -> bool:
    """The request certainly did not take effect: 503 (the front refused it) or no connection made.
    Safe to repeat even for a POST."""
    import requests

    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(err, requests.exceptions.ConnectionError) and "refused" in str(err).lower():
        return True
    return getattr(err, "response_code", None) == 503


def is_transient(err: BaseException) -> bool:
    import requests

    if isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError)):
        return True
    return getattr(err, "response_code", None) in TRANSIENT_CODES


class Session:
    """A python-grid5000 client bound to the provider settings and a stop signal."""

    def __init__(
        self,
        settings: G5kSettings,
        stop: Optional[asyncio.Event] = None,
        attempts: int = 6,
        first_delay: float = 0.5,
        max_delay: float = 20.0,
    ) -> None:
        import grid5000
        import requests

        self.settings = settings
        self.stop = stop or asyncio.Event()
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.calls: collections.Counter[str] = collections.Counter()
        self.gk = grid5000.Grid5000(**settings.client_kwargs())
        self.gk.session = requests.Session()  # no hidden urllib3 retries: ours are counted and cancellable

    def site(self, uid: str) -> Any:
        """A Site object without the GET python-grid5000's `sites[uid]` would make."""
        from grid5000.objects import Site

        return Site(self.gk.sites, {"uid": uid})

    async def sleep(self, seconds: float) -> None:
        """Wait, returning early (with Cancelled) when the operation is stopped."""
        await deadlines.sleep(seconds, self.stop)

    async def call(self, what: str, fn: Callable[..., T], *args: Any, retry: bool | str = True, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` in a thread; retry transient failures when `retry` is True,
        only failures that certainly had no effect when it is "unprocessed" (for POSTs).

        Raises G5kError quoting the API's reason (with `what` saying which call failed)."""
        import grid5000

        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            self.calls[what.split(" ")[0]] += 1
            started = time.monotonic()
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except grid5000.exceptions.Grid5000AuthenticationError as err:
                code, reason = describe(err)
                raise G5kError(
                    f"{what}: the Grid'5000 API at {self.settings.uri} refused the credentials (HTTP {code}: {reason}); "
                    f"check testbed:g5kUsername/g5kPassword or {self.settings.source}",
                    code,
                    reason,
                ) from err
            except Exception as err:  # noqa: BLE001 - mapped to G5kError below
                code, reason = describe(err)
                transient = is_unprocessed(err) if retry == "unprocessed" else is_transient(err)
                _log.debug("%s failed after %.1fs (attempt %d): %s", what, time.monotonic() - started, attempt, reason)
                if not (retry and transient) or attempt == self.attempts or self.stop.is_set():
                    status = f"HTTP {code}: " if code else ""
                    hint = "" if code else f" (is the Grid'5000 API at {self.settings.uri} reachable?)"
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise G5kError(f"{what} failed{tries}: {status}{reason}{hint}", code, reason) from err
            await self.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        raise AssertionError("unreachable")

    def close(self) -> None:
        try:
            self.gk.session.close()
        except Exception:  # noqa: BLE001
            pass
