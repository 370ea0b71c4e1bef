"""`testbed:index:Command`: a shell command run on the hosts of a reservation that match a pattern.

EnOSlib's `run_command` as a resource (pulumi-command's model): `create` runs on `pulumi up`,
`update` (default: `create`) when what it depends on changes, `delete` on destroy. It runs from
the Reservation's `inventory` alone, so destroy needs nothing but stack state.

Re-runs: a change of `create`, `environment`, `triggers`, `on`, `background`, `become`, or of the
matched hosts (a host added, removed, or replaced by a new machine with a new host key) re-runs
the command in place; other changes (`update`, `delete`, `timeout`, an inventory change that
leaves the matched hosts alone) are recorded without running anything.
"""

from __future__ import annotations

import uuid
from typing import Any, Optional

from ..protocol.codec import UNKNOWN, Secret, reveal
from ..protocol.errors import PartialFailure, ResourceFailure
from ..remote import HostResult, PatternError, RemoteError, run_shell, stop_background
from ..remote.patterns import warm_up as warm_up_patterns
from ..remote.scripts import ENV_NAME
from ..testbeds.base import CheckFailure
from .base import CheckResult, ReadResult
from .deadline import deadline
from .diff import DiffResult
from .steps import Step, check_targets, note_unchecked_pattern, check_timeout, step_diff
from .steps import inventory_of as _inventory
from .steps import top as _top

INPUT_KEYS = {"inventory", "on", "create", "update", "delete", "background", "environment", "triggers", "timeout", "become"}
RERUN_KEYS = {"create", "environment", "triggers", "on", "background", "become"}
STDERR_TAIL = 400


class Command(Step):
    token = "testbed:index:Command"

    @classmethod
    def warm_up(cls) -> None:
        # Resolving a pattern imports ansible-core (~0.3 s); a first step's inventory is
        # usually unknown at Check, so this import would otherwise land on its Create.
        warm_up_patterns()

    # ---- Check -------------------------------------------------------------------------------

    def check(self, name: str, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in news.items() if v is not None}
        inputs.setdefault("on", "all")
        failures: list[CheckFailure] = []
        fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
        for key in sorted(set(inputs) - INPUT_KEYS):
            fail(key, f"unknown property `{key}` (Command accepts {', '.join(sorted(INPUT_KEYS))})")
        for key in ("create", "update", "delete"):
            value = reveal(inputs.get(key))  # a secret command (e.g. built from a secret output) is a command too
            if value is UNKNOWN or value is None and key != "create":
                continue
            if not isinstance(value, str) or not value.strip():
                fail(key, "required: a non-empty shell command" if key == "create" else "must be a non-empty shell command")
        on = inputs.get("on")
        if on is not UNKNOWN and (not isinstance(on, str) or not on.strip()):
            fail("on", "must be an Ansible host pattern over roles and host names, e.g. `server`, `client:!server`, `all`")
        env = inputs.get("environment")
        if isinstance(env, dict):
            for k, v in env.items():
                if not ENV_NAME.match(k):
                    fail(f"environment.{k}", "not a valid environment variable name")
                elif v is not UNKNOWN and not isinstance(reveal(v), str):
                    fail(f"environment.{k}", "must be a string")
        elif env is not None and env is not UNKNOWN:
            fail("environment", "must be a map of variable names to strings")
        check_timeout(inputs, fail)
        check_targets(inputs, not failures, fail, self.ctx.planned.values())
        return CheckResult(inputs, failures)

    # ---- Diff --------------------------------------------------------------------------------

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return step_diff(outputs, old_inputs, news, INPUT_KEYS)

    # ---- Create / Read / Update / Delete ----------------------------------------------------

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            await note_unchecked_pattern(self.ctx, urn, inputs)
            return "", {**inputs, "results": UNKNOWN, "stdout": UNKNOWN, "hosts": UNKNOWN}
        rid = uuid.uuid4().hex[:16]
        outputs, failure = await self._run(urn, rid, inputs, inputs["create"], timeout)
        if failure:
            raise PartialFailure(failure, rid, outputs)  # recorded with its results; `pulumi up` retries
        return rid, outputs

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        if "results" not in outputs:
            raise ResourceFailure("importing a Command is not supported; it runs on `pulumi up`")
        return ReadResult(id, outputs, inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS})

    async def update(
        self,
        id: str,
        urn: str,
        outputs: dict[str, Any],
        old_inputs: dict[str, Any],
        news: dict[str, Any],
        preview: bool,
        timeout: float = 0,
    ) -> dict[str, Any]:
        changes = self.diff(outputs, old_inputs, news).detailed
        # A step that failed last time (recorded with its partial results) is retried.
        failed_before = any(r.get("status") != "ok" for r in reveal(outputs.get("results")) or [])
        rerun = failed_before or any(_top(p) in RERUN_KEYS | {"hosts"} for p in changes)
        kept = {k: outputs[k] for k in ("results", "stdout", "hosts") if k in outputs}
        if not rerun:
            return {**news, **kept}
        if preview:
            await note_unchecked_pattern(self.ctx, urn, news)
            return {**news, "results": UNKNOWN, "stdout": UNKNOWN, "hosts": UNKNOWN}
        if old_inputs.get("background"):
            await self._stop_background(urn, id, {**old_inputs, **{"inventory": outputs.get("inventory", old_inputs.get("inventory"))}})
        outputs, failure = await self._run(urn, id, news, news.get("update") or news["create"], timeout)
        if failure:
            raise PartialFailure(failure, id, outputs)
        return outputs

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        inputs = {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        if "results" not in outputs or "inventory" not in inputs:
            return
        if inputs.get("delete"):
            _, failure = await self._run(urn, id, inputs, inputs["delete"], timeout, background=False)
            if failure:
                raise ResourceFailure(f"the delete command failed (the step stays in the stack; fix it and retry): {failure}")
        if inputs.get("background"):
            await self._stop_background(urn, id, inputs)

    # ---- running ------------------------------------------------------------------------------

    async def _run(
        self, urn: str, rid: str, inputs: dict[str, Any], command: str, timeout: float, background: Optional[bool] = None
    ) -> tuple[dict[str, Any], Optional[str]]:
        """Run on the matched hosts: the outputs, and a failure message naming the failed hosts."""
        inventory, pattern = _inventory(inputs), inputs.get("on", "all")
        progress = self.ctx.log.status(urn)
        limit_s = float(inputs.get("timeout") or 0) or timeout
        bg = inputs.get("background") if background is None else background
        async with deadline(self.ctx.cancelled, timeout) as limit:
            try:
                results = await run_shell(
                    inventory,
                    pattern,
                    reveal(command),
                    environment={k: reveal(v) for k, v in (inputs.get("environment") or {}).items()},
                    become=bool(inputs.get("become")),
                    background=_tag(rid) if bg else None,
                    timeout=limit_s,
                    cancelled=limit.stop,
                    progress=progress,
                )
            except PatternError as err:
                raise ResourceFailure(f"`on: {pattern}`: {err}") from err
            except RemoteError as err:
                raise ResourceFailure(limit.explain(f"could not run the command: {err}")) from err
        outputs = {**inputs, **_outputs(results, secret=_is_secret_run(command, inputs))}
        failed = [r for r in results if r.status != "ok"]
        if failed:
            return outputs, limit.explain(_failure_message(failed, len(results)))
        await self.ctx.log.info(urn, f"ran on {len(results)} host(s): {', '.join(r.host for r in results[:8])}{' …' if len(results) > 8 else ''}")
        return outputs, None

    async def _stop_background(self, urn: str, rid: str, inputs: dict[str, Any]) -> None:
        try:
            await stop_background(_inventory(inputs), inputs.get("on", "all"), _tag(rid), cancelled=self.ctx.cancelled, progress=self.ctx.log.status(urn))
        except PatternError:
            return  # its hosts are gone already: nothing left running


def _tag(rid: str) -> str:
    return f"cmd-{rid}"


def _is_secret_run(command: Any, inputs: dict[str, Any]) -> bool:
    """A secret command or environment may print secrets: then its output is secret too.
    (The inventory is always secret — it carries the key — and does not count.)"""
    env = inputs.get("environment") or {}
    return isinstance(command, Secret) or isinstance(env, Secret) or any(isinstance(v, Secret) for v in env.values())


def _outputs(results: list[HostResult], secret: bool = False) -> dict[str, Any]:
    wrap = Secret if secret else (lambda v: v)
    out: dict[str, Any] = {"results": wrap([r.as_output() for r in results]), "hosts": [r.host for r in results]}
    if len(results) == 1:
        out["stdout"] = wrap(results[0].stdout)
    return out


def _failure_message(failed: list[HostResult], total: int) -> str:
    parts = []
    for r in failed:
        tail = r.stderr.strip()[-STDERR_TAIL:] or r.stdout.strip()[-STDERR_TAIL:] or "(no output)"
        what = {"unreachable": "unreachable", "timeout": "timed out"}.get(r.status, f"rc={r.rc}")
        parts.append(f"{r.host} ({what}): {tail}")
    return f"command failed on {len(failed)} of {total} host(s): " + "; ".join(parts)
