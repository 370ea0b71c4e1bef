"""`testbed:index:Play`: Ansible tasks (as data) or a playbook file, run on the hosts of a
reservation that match a pattern: EnOSlib's `actions()` block as a resource.

Idempotence is Ansible's: the modules report `changed`, the outputs count it per host, and an
unchanged program is an empty diff, so a second `pulumi up` runs nothing. A change of the tasks,
the playbook's files, the local files the tasks ship (`src` of copy/template…), `vars`,
`hostVars`, `gatherFacts`, `become`, `triggers`, `on` or of the matched machines re-runs the play
in place; `destroyTasks` and `timeout` changes are only recorded. A failed task fails the step
naming the host, the task and Ansible's message; the partial results stay in the stack and the
next `pulumi up` runs the play again.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import Secret, has_unknowns, reveal
from ..protocol.errors import ResourceFailure
from ..remote import PatternError, RemoteError
from ..remote.patterns import warm_up as warm_up_patterns
from ..remote.playbook import OUTPUT_LIMIT, PlayReport, TaskResult, check_tasks, content_hash, local_sources, playbook_files, run_play
from ..remote.playbook import warm_up as warm_up_modules
from ..typed.model import input_names
from .base import CheckResult
from .play_schema import PLAY
from .steps import Step, inventory_of

INPUT_KEYS = input_names(PLAY.inputs) | {"sourcesHash"}  # the hash Check records beside the inputs
RERUN_KEYS = {"tasks", "playbook", "sourcesHash", "vars", "hostVars", "gatherFacts", "become", "triggers", "on"}
OUTPUTS = ("hosts", "hostStats", "changed", "results", "registered")
FAILURE_TAIL = 400


class Play(Step):
    token = "testbed:index:Play"
    definition = PLAY
    computed = OUTPUTS
    rerun_keys = frozenset(RERUN_KEYS)
    hidden_keys = frozenset({"sourcesHash"})
    with_vars = True

    @classmethod
    def warm_up(cls) -> None:
        warm_up_patterns()
        warm_up_modules()

    # ---- Check -------------------------------------------------------------------------------

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs, failures = self.check_definition({k: v for k, v in news.items() if k != "sourcesHash"})
        fail = lambda prop, reason: failures.append(CheckFailure(prop, reason))  # noqa: E731
        tasks, playbook = inputs.get("tasks"), inputs.get("playbook")
        if tasks is None and playbook is None:
            fail("tasks", "required: a list of Ansible tasks (or give `playbook`, a playbook file)")
        elif tasks is not None and playbook is not None:
            fail("playbook", "give either `tasks` or `playbook`, not both")
        for key in ("tasks", "destroyTasks"):
            value = inputs.get(key)
            if isinstance(reveal(value), list) and not has_unknowns(value):
                for prop, reason in check_tasks(reveal(value), key):
                    fail(prop, reason)
        if isinstance(playbook, str) and tasks is None and not os.path.isfile(playbook):
            fail("playbook", f"no readable playbook file `{playbook}` (relative to {os.getcwd()})")
        if not failures:
            self._check_files(inputs, fail)
        inv = self.check_pattern(inputs, failures)
        host_vars = reveal(inputs.get("hostVars"))
        if inv is not None and isinstance(host_vars, dict):
            names = {h["name"] for h in inv["hosts"]}
            for host in sorted(set(host_vars) - names):
                fail(f"hostVars.{host}", f"no host `{host}` in the inventory (hosts: {', '.join(sorted(names))})")
        return CheckResult(inputs, failures)

    @staticmethod
    def _check_files(inputs: dict[str, Any], fail) -> None:
        """Hash the controller files the play uses into `sourcesHash`, so an edit re-runs it."""
        base = os.getcwd()
        paths: list[str] = []
        playbook = inputs.get("playbook")
        if isinstance(playbook, str):
            paths += playbook_files(playbook)
        tasks = reveal(inputs.get("tasks"))
        if tasks is not None and not has_unknowns(tasks):
            for path in local_sources(tasks, base):
                if not os.path.exists(path):
                    fail("tasks", f"a task ships `{os.path.relpath(path, base)}`, which does not exist (relative to {base})")
                else:
                    paths.append(path)
        if paths:
            try:
                inputs["sourcesHash"] = content_hash(paths)
            except OSError as err:
                fail("playbook" if playbook else "tasks", f"cannot read `{err.filename}`: {err.strerror}")

    # ---- Run / Delete ----------------------------------------------------------------------

    def failed_before(self, outputs: dict[str, Any]) -> bool:
        return any(r.get("failed") or r.get("unreachable") for r in reveal(outputs.get("hostStats")) or [])

    async def run(self, urn: str, inputs: dict[str, Any], timeout: float) -> tuple[dict[str, Any], Optional[str]]:
        return await self._run(urn, inputs, "tasks", timeout)

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        inputs = {k: v for k, v in outputs.items() if k in INPUT_KEYS}
        if not inputs.get("destroyTasks") or "inventory" not in inputs:
            return
        _, failure = await self._run(urn, inputs, "destroyTasks", timeout)
        if failure:
            raise ResourceFailure(f"the destroy tasks failed (the play stays in the stack; fix them and retry): {failure}")

    # ---- running ------------------------------------------------------------------------------

    async def _run(self, urn: str, inputs: dict[str, Any], which: str, timeout: float) -> tuple[dict[str, Any], Optional[str]]:
        pattern = inputs.get("on", "all")
        limit_s = float(inputs.get("timeout") or 0) or timeout
        playbook = inputs.get("playbook") if which == "tasks" else None
        async with deadline(self.ctx.cancelled, limit_s) as limit:
            try:
                report = await run_play(
                    inventory_of(inputs),
                    pattern,
                    None if playbook else reveal(inputs.get(which)),
                    playbook=playbook,
                    extra_vars=reveal(inputs.get("vars")),
                    host_vars=_host_vars(inputs),
                    gather_facts=bool(inputs.get("gatherFacts")),
                    become=bool(inputs.get("become")),
                    timeout=limit_s,
                    cancelled=limit.stop,
                    progress=self.ctx.log.status(urn),
                )
            except PatternError as err:
                raise ResourceFailure(f"`on: {pattern}`: {err}") from err
            except RemoteError as err:
                raise ResourceFailure(limit.explain(f"could not run the play: {err}")) from err
        outputs = {**inputs, **_outputs(report, secret=_is_secret(inputs))}
        problem = _failure(report)
        if problem:
            return outputs, limit.explain(problem)
        summary = ", ".join(f"{r['host']} {r['changed']} changed" for r in report.host_stats()[:8])
        await self.ctx.log.info(urn, f"play ran on {len(report.hosts)} host(s): {summary}{' …' if len(report.hosts) > 8 else ''}")
        return outputs, None


def _host_vars(inputs: dict[str, Any]) -> Optional[dict[str, dict[str, Any]]]:
    value = reveal(inputs.get("hostVars"))
    return {h: reveal(v) for h, v in value.items()} if isinstance(value, dict) else None


def _is_secret(inputs: dict[str, Any]) -> bool:
    """Secret tasks or variables may show up in results: then the results are secret too."""

    def has(value: Any) -> bool:
        if isinstance(value, Secret):
            return True
        if isinstance(value, dict):
            return any(has(v) for v in value.values())
        if isinstance(value, list):
            return any(has(v) for v in value)
        return False

    return any(has(inputs.get(k)) for k in ("tasks", "vars", "hostVars", "destroyTasks"))


def _outputs(report: PlayReport, secret: bool) -> dict[str, Any]:
    wrap = Secret if secret else (lambda v: v)
    return {
        "hosts": list(report.hosts),
        "hostStats": report.host_stats(),
        "changed": report.changed,
        "results": wrap([task_output(r) for r in report.results]),
        "registered": wrap(report.registered),
    }


def _failure(report: PlayReport) -> Optional[str]:
    """Which hosts failed which task and why; None when the play succeeded everywhere."""
    parts = []
    for r in report.failed:
        why = "; ".join(x.strip() for x in (r.msg, r.stderr[-FAILURE_TAIL:]) if x and x.strip()) or r.stdout.strip() or "(no message)"
        parts.append(
            f"{r.host}: task `{r.task}` {'unreachable' if r.status == 'unreachable' else 'failed'}"
            + (f" (rc={r.rc})" if r.rc not in (None, 0) else "")
            + f": {why[-FAILURE_TAIL:]}"
        )
    seen = {r.host for r in report.results} | set(report.stats)
    missing = [h for h in report.hosts if h not in seen]
    if missing and report.outcome != "exited":
        parts.append(f"{', '.join(missing)}: {'cancelled' if report.outcome == 'cancelled' else 'timed out'} before any result")
    elif missing and not report.stats:
        parts.append(
            f"{', '.join(missing)}: no result (ansible-playbook exited with {report.returncode}: {report.stderr.strip()[-FAILURE_TAIL:]})"
        )
    if not parts:
        return None
    return f"play failed on {len({p.split(':')[0] for p in parts})} of {len(report.hosts)} host(s): " + "; ".join(parts)


def task_output(r: TaskResult) -> dict[str, Any]:
    """One task's result on one host as the schema's PlayTaskResult (long texts cut)."""
    out: dict[str, Any] = {"task": r.task, "host": r.host, "status": r.status}
    for key in ("msg", "stdout", "stderr"):
        value = getattr(r, key)
        if value:
            out[key] = value if len(value) <= OUTPUT_LIMIT else value[:OUTPUT_LIMIT] + f"… ({len(value)} characters)"
    if r.rc is not None:
        out["rc"] = r.rc
    return out
