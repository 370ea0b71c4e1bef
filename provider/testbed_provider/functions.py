"""Provider functions (Invoke): data a program can ask for before reserving anything."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from .common.results import CheckFailure
from .resources.base import ProviderContext
from .testbeds import BACKENDS, make_testbed

Function = Callable[[ProviderContext, dict[str, Any]], Awaitable[tuple[dict[str, Any] | None, list[CheckFailure]]]]


async def get_backend(ctx: ProviderContext, args: dict[str, Any]) -> tuple[dict[str, Any], list[CheckFailure]]:
    """`testbed:index:getBackend`: which testbed this stack uses and whether it can run here."""
    name = args.get("backend") or ctx.config.backend
    if name not in BACKENDS:
        return {}, [CheckFailure("backend", f"unknown backend `{name}`; available: {', '.join(sorted(BACKENDS))}")]
    reason = make_testbed(name, ctx.cancelled, ctx.config).preflight()
    return {"backend": name, "ready": reason is None, "reason": reason or "", "available": sorted(BACKENDS)}, []


def _get_facts(ctx: ProviderContext, args: dict[str, Any]) -> Awaitable[tuple[dict[str, Any] | None, list[CheckFailure]]]:
    from .get_facts import get_facts  # imports the remote layer: only when asked

    return get_facts(ctx, args)


FUNCTIONS: dict[str, Function] = {"testbed:index:getBackend": get_backend, "testbed:index:getFacts": _get_facts}
