"""`testbed:index:Command`: a shell command run on the hosts of a reservation that match a pattern.

EnOSlib's `run_command` as a resource (pulumi-command's model): `create` runs on `pulumi up`,
`update` (default: `create`) when what it depends on changes, `delete` on destroy. It runs from
the Reservation's `inventory` alone, so destroy needs nothing but stack state.

Templates: `create`, `update`, `delete` and `readyCommand` may be Jinja templates (text with
`{{` or `{%`), rendered per host by ansible-core with the variables a Play sees plus `vars`
(EnOSlib's `extra_vars`; see remote/templating.py). Check renders them once the inventory is
known (a template error is a failure naming the property and the hosts) and records a short
hash of each host's rendered `create` in the hidden input `renderedHashes`.

Re-runs: a change of `create`, `environment`, `triggers`, `on`, `background`, `become`, or of the
matched hosts (a host added, removed, or replaced by a new machine with a new host key) re-runs
the command in place; for a template, the rendered commands stand for `create`: a change of a
variable it uses re-runs it, an edit that renders the same does not. Other changes (`update`,
`delete`, `timeout`, `vars` a template does not use, `readyPort`/`readyCommand`/`readyTimeout`,
an inventory change that leaves the matched hosts alone) are recorded without running anything.

Readiness: a `background` command with `readyPort` (a TCP socket listens on it on the host)
and/or `readyCommand` (exits 0 on the host) is waited for, up to `readyTimeout` seconds
(default 60), before the step completes, so the next step never races it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Callable, Iterable, Mapping, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import UNKNOWN, Secret, has_unknowns, reveal
from ..protocol.errors import PartialFailure, ResourceFailure
from ..remote import HostResult, PatternError, RemoteError, run_shell, stop_background
from ..remote.patterns import match_hosts
from ..remote.patterns import warm_up as warm_up_patterns
from ..remote.scripts import ENV_NAME
from ..remote.templating import TemplateError, is_template, render
from ..remote.templating import warm_up as warm_up_templating
from ..typed.model import default_of, input_names
from .base import CheckResult
from .command_schema import COMMAND
from .steps import Step, note_unchecked_pattern
from .steps import inventory_of as _inventory
from .steps import top as _top

INPUT_KEYS = input_names(COMMAND.inputs) | {"renderedHashes"}
HIDDEN_KEYS = {"renderedHashes"}  # computed by Check, not the program's
RERUN_KEYS = {"create", "environment", "triggers", "on", "background", "become"}
TEMPLATE_KEYS = ("create", "update", "delete", "readyCommand")
READY_KEYS = ("readyPort", "readyCommand", "readyTimeout")
DEFAULT_READY_TIMEOUT = float(default_of(COMMAND.inputs, "ready_timeout"))
STDERR_TAIL = 400
# The last line of a background start's stderr when it did not get ready (see scripts.bg_start_script).
NOT_READY = ("not ready after ", "the command exited with status ", "TCP port ")
RAW_HINT = "; a literal `{{` of the shell command (e.g. a docker or Go `--format`) goes inside `{% raw %}…{% endraw %}`"

Fail = Callable[[str, str], None]


class Command(Step):
    token = "testbed:index:Command"
    definition = COMMAND
    hidden_keys = frozenset(HIDDEN_KEYS)

    @classmethod
    def warm_up(cls) -> None:
        # Resolving a pattern imports ansible-core (~0.3 s); a first step's inventory is
        # usually unknown at Check, so this import would otherwise land on its Create.
        warm_up_patterns()
        warm_up_templating()

    # ---- Check -------------------------------------------------------------------------------

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs, failures = self.check_definition({k: v for k, v in news.items() if k not in HIDDEN_KEYS})
        fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
        env = reveal(inputs.get("environment"))
        for key in env if isinstance(env, dict) else ():
            if not ENV_NAME.match(key):
                fail(f"environment.{key}", "not a valid environment variable name")
        check_ready(inputs, fail)
        inventory = self.check_pattern(inputs, failures)
        if inventory is not None and not failures:
            hashes = check_templates(inputs, inventory, fail)
            if hashes is not None:
                inputs["renderedHashes"] = hashes
        return CheckResult(inputs, failures)

    # ---- Diff --------------------------------------------------------------------------------

    # ---- Create / Read / Update / Delete ----------------------------------------------------

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            await note_unchecked_pattern(self.ctx, urn, inputs)
            return "", {**inputs, "results": UNKNOWN, "stdout": UNKNOWN, "hosts": UNKNOWN}
        rid = uuid.uuid4().hex[:16]
        outputs, failure = await self._run(urn, rid, inputs, "create", timeout)
        if failure:
            raise PartialFailure(failure, rid, outputs)  # recorded with its results; `pulumi up` retries
        return rid, outputs

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
        old_inputs = old_inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        changes = self.diff(outputs, old_inputs, news).detailed
        # A step that failed last time (recorded with its partial results) is retried.
        failed_before = any(r.get("status") != "ok" for r in reveal(outputs.get("results")) or [])
        rerun = failed_before or rerun_due(changes, old_inputs, news)
        kept: dict[str, Any] = {k: outputs[k] for k in ("results", "stdout", "hosts") if k in outputs}
        if not rerun:
            return {**news, **kept}
        if preview:
            await note_unchecked_pattern(self.ctx, urn, news)
            return {**news, "results": UNKNOWN, "stdout": UNKNOWN, "hosts": UNKNOWN}
        if old_inputs.get("background"):
            await self._stop_background(urn, id, {**old_inputs, **{"inventory": outputs.get("inventory", old_inputs.get("inventory"))}})
        which = "update" if news.get("update") else "create"
        outputs, failure = await self._run(urn, id, news, which, timeout)
        if failure:
            raise PartialFailure(failure, id, outputs)
        return outputs

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        inputs = {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        if "results" not in outputs or "inventory" not in inputs:
            return
        if inputs.get("delete"):
            _, failure = await self._run(urn, id, inputs, "delete", timeout, background=False)
            if failure:
                raise ResourceFailure(f"the delete command failed (the step stays in the stack; fix it and retry): {failure}")
        if inputs.get("background"):
            await self._stop_background(urn, id, inputs)

    # ---- running ------------------------------------------------------------------------------

    async def _run(
        self, urn: str, rid: str, inputs: dict[str, Any], which: str, timeout: float, background: Optional[bool] = None
    ) -> tuple[dict[str, Any], Optional[str]]:
        """Run the command `which` (create, update or delete) on the matched hosts, rendered per
        host when it is a template: the outputs, and a failure message naming the failed hosts."""
        inventory, pattern = _inventory(inputs), inputs.get("on", "all")
        command = inputs[which]
        progress = self.ctx.log.status(urn)
        limit_s = float(inputs.get("timeout") or 0) or timeout
        bg = inputs.get("background") if background is None else background
        waits = bool(bg) and which != "delete" and (inputs.get("readyPort") is not None or inputs.get("readyCommand") is not None)
        async with deadline(self.ctx.cancelled, timeout) as limit:
            try:
                per_host = render_for(inventory, pattern, which, reveal(command), inputs)
                ready_command = (
                    render_for(inventory, pattern, "readyCommand", reveal(inputs["readyCommand"]), inputs)
                    if waits and inputs.get("readyCommand") is not None
                    else None
                )
                results = await run_shell(
                    inventory,
                    pattern,
                    per_host,
                    environment={k: reveal(v) for k, v in (inputs.get("environment") or {}).items()},
                    become=bool(inputs.get("become")),
                    background=_tag(rid) if bg else None,
                    timeout=limit_s,
                    cancelled=limit.stop,
                    progress=progress,
                    ready_port=inputs.get("readyPort") if waits else None,
                    ready_command=ready_command,
                    ready_timeout=float(inputs.get("readyTimeout") or DEFAULT_READY_TIMEOUT),
                )
            except PatternError as err:
                raise ResourceFailure(f"`on: {pattern}`: {err}") from err
            except RemoteError as err:
                raise ResourceFailure(limit.explain(f"could not run the command: {err}")) from err
        outputs = {**inputs, **_outputs(results, secret=_is_secret_run(command, inputs))}
        failed = [r for r in results if r.status != "ok"]
        if failed:
            return outputs, limit.explain(_failure_message(failed, len(results)))
        did = "started in the background, ready," if waits else "ran"
        await self.ctx.log.info(
            urn, f"{did} on {len(results)} host(s): {', '.join(r.host for r in results[:8])}{' …' if len(results) > 8 else ''}"
        )
        return outputs, None

    async def _stop_background(self, urn: str, rid: str, inputs: dict[str, Any]) -> None:
        try:
            await stop_background(
                _inventory(inputs), inputs.get("on", "all"), _tag(rid), cancelled=self.ctx.cancelled, progress=self.ctx.log.status(urn)
            )
        except PatternError:
            return  # its hosts are gone already: nothing left running


def _tag(rid: str) -> str:
    return f"cmd-{rid}"


def _is_secret_run(command: Any, inputs: dict[str, Any]) -> bool:
    """A secret command, environment, variable or ready command may print secrets: then its
    output is secret too. (The inventory is always secret — it carries the key — and does not count.)"""
    env = inputs.get("environment") or {}
    return (
        isinstance(command, Secret)
        or isinstance(env, Secret)
        or any(isinstance(v, Secret) for v in env.values())
        or _has_secret(inputs.get("vars"))
        or isinstance(inputs.get("readyCommand"), Secret)
    )


def _has_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, Mapping):
        return any(_has_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_secret(v) for v in value)
    return False


def _outputs(results: list[HostResult], secret: bool = False) -> dict[str, Any]:
    wrap = Secret if secret else (lambda v: v)
    out: dict[str, Any] = {"results": wrap([result_output(r) for r in results]), "hosts": [r.host for r in results]}
    if len(results) == 1:
        out["stdout"] = wrap(results[0].stdout)
    return out


def _failure_message(failed: list[HostResult], total: int) -> str:
    parts = []
    for r in failed:
        what = {"unreachable": "unreachable", "timeout": "timed out"}.get(r.status, f"rc={r.rc}")
        lines = r.stderr.strip().splitlines()
        if lines and lines[-1].startswith(NOT_READY):  # a background command that did not get ready: why first
            log = "\n".join(lines[:-1]).strip()[-STDERR_TAIL // 2 :]
            parts.append(f"{r.host} ({what}): {lines[-1]}" + (f"; its log ends: {log}" if log else ""))
            continue
        tail = r.stderr.strip()[-STDERR_TAIL:] or r.stdout.strip()[-STDERR_TAIL:] or "(no output)"
        parts.append(f"{r.host} ({what}): {tail}")
    return f"command failed on {len(failed)} of {total} host(s): " + "; ".join(parts)


# ---- rules of the inputs this controller adds (small functions, callable from a generic Check) ----


def check_ready(inputs: dict[str, Any], fail: Fail) -> None:
    """`readyPort`, `readyCommand`, `readyTimeout`: for a background command only."""
    port, command, limit = (inputs.get(k) for k in READY_KEYS)
    if isinstance(limit, (int, float)) and limit == 0:
        fail("readyTimeout", f"must be a number of seconds > 0 (default {DEFAULT_READY_TIMEOUT:g})")
    if limit is not None and port is None and command is None:
        fail("readyTimeout", "has no effect without `readyPort` or `readyCommand`")
    background = inputs.get("background")
    if background is not UNKNOWN and not background:
        for key in READY_KEYS:
            if inputs.get(key) is not None:
                fail(key, "only for a background command (`background: true`): a foreground command is done when it exits")


def render_for(inventory: dict[str, Any], pattern: str, prop: str, text: Any, inputs: Mapping[str, Any]) -> Any:
    """Each matched host's rendering of `text` when it is a template, else `text` itself.
    Raises RemoteError naming `prop` when it does not render."""
    if not is_template(text):
        return text
    try:
        return render(inventory, match_hosts(inventory, pattern), text, reveal(inputs.get("vars")) or {})
    except TemplateError as err:
        raise RemoteError(f"`{prop}` does not render {err}") from err


def check_templates(inputs: dict[str, Any], inventory: dict[str, Any], fail: Fail) -> Optional[Any]:
    """Render every templated command on the matched hosts of a known inventory (a failure
    names the property, the hosts and Ansible's reason); the hashes of the rendered `create`
    per host (secret when what went into it is), or None when `create` is no template or its
    rendering cannot be known yet."""
    names = match_hosts(inventory, inputs.get("on", "all"))
    variables = inputs.get("vars")
    if has_unknowns(variables):
        return None
    hashes = None
    for key in TEMPLATE_KEYS:
        text = reveal(inputs.get(key))
        if not is_template(text) or has_unknowns(text):
            continue
        try:
            rendered = render(inventory, names, text, reveal(variables) or {})
        except TemplateError as err:
            hint = RAW_HINT if any("syntax" in reason.lower() for _, reason in err.failures) else ""
            fail(key, f"the template does not render {err}{hint}")
            continue
        if key == "create":
            digests = {h: hashlib.sha256(c.encode()).hexdigest()[:16] for h, c in rendered.items()}
            hashes = Secret(digests) if _has_secret(inputs.get("create")) or _has_secret(variables) else digests
    return hashes


def rerun_due(changes: Iterable[str], old_inputs: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    """Whether these changed property paths re-run the command. For a template rendered on
    both sides, its renderings stand for `create` (see the module's docstring)."""
    due = RERUN_KEYS | {"hosts", "renderedHashes"}
    if "renderedHashes" in old_inputs and "renderedHashes" in news:
        due = due - {"create"}
    return any(_top(p) in due for p in changes)


def result_output(r: HostResult) -> dict[str, Any]:
    """One host's result as the schema's CommandResult."""
    return {
        "host": r.host,
        "rc": r.rc,
        "stdout": r.stdout,
        "stderr": r.stderr,
        "startedAt": r.started_at,
        "durationS": round(r.duration_s, 3),
        "status": r.status,
    }
