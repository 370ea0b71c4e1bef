"""`testbed:g5k:Deployment`: a Kadeploy environment installed on nodes of a g5k Job.

Kadeploy does not retry, so KO nodes are redeployed up to `maxAttempts` times. The resource
succeeds when at least `minDeployed` nodes (default: all) end OK; failed nodes are always
listed in `failedNodes`. Below `minDeployed` it fails but keeps its state (partial), so
`pulumi up` retries and `pulumi destroy` knows the deployments. Any input change redeploys
(replace). Delete cancels a deployment still running; a finished one needs nothing (the
nodes go back to the standard environment at the end of the job). When the job has ended,
refresh drops the deployment.
"""

from __future__ import annotations

import re
import time
from typing import Any, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import UNKNOWN, has_unknowns
from ..protocol.errors import PartialFailure, ResourceFailure
from ..testbeds.g5k import deployments, jobs, naming
from ..testbeds.g5k.session import G5kError, Session
from ..testbeds.g5k.validation import Reference, with_timeout
from ..typed.check import check_inputs, with_defaults
from ..typed.model import input_names
from .base import CheckResult, ReadResult, ResourceController
from .diff import DiffResult, diff_inputs
from .g5k_common import default, job_of_step_alive, settings_of
from .g5k_deployment_schema import DEPLOYMENT, DeploymentArgs

INPUT_KEYS = input_names(DeploymentArgs)
NO_REDEPLOY = {"maxAttempts", "minDeployed"}
COMPUTED = ("deployedNodes", "failedNodes", "results", "deploymentUids")


def validate(inputs: dict[str, Any]) -> list[CheckFailure]:
    """The definition's Check, then what no type says: `minDeployed` within the listed nodes."""
    failures = check_inputs(DeploymentArgs, inputs, DEPLOYMENT.label).failures
    refused = {f.property.split("[")[0] for f in failures}
    nodes, minimum = inputs.get("nodes"), inputs.get("minDeployed")
    if (
        refused.isdisjoint({"nodes", "minDeployed"})
        and isinstance(minimum, int)
        and isinstance(nodes, list)
        and not has_unknowns(nodes)
        and minimum > len(nodes)
    ):
        failures.append(CheckFailure("minDeployed", f"{minimum} exceeds the {len(nodes)} node(s) listed in `nodes`"))
    return failures


class Deployment(ResourceController):
    token = "testbed:g5k:Deployment"

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs = {k: v for k, v in news.items() if v is not None}
        failures = validate(inputs)
        site, env = inputs.get("site"), inputs.get("environment")
        if not failures and isinstance(site, str) and isinstance(env, str) and self.ctx.config.g5k is not None:
            failures = await with_timeout(self._check_environment(site, env))
        return CheckResult(inputs, failures)

    async def _check_environment(self, site: str, env: str) -> list[CheckFailure]:
        """Is the environment known at the site? (Kadeploy would refuse it minutes later.)"""
        failures: list[CheckFailure] = []
        if env.startswith(("http://", "https://")) or "@" in env:
            return failures  # a description URL or another user's image: Kadeploy judges
        assert self.ctx.config.g5k is not None  # check() asks only on a configured g5k backend
        ref = Reference(self.ctx.config.g5k)
        try:
            names = await ref.environments(site)
        finally:
            ref.close()
        if names is not None and env not in names:
            family = re.sub(r"[^a-z][\s\S]*", "", env)  # `debian` of `debian99-min`
            close = sorted(n for n in names if family and n.startswith(family))[:8]
            similar = f" (similar: {', '.join(close)})" if close else ""
            failures.append(CheckFailure("environment", f"no environment `{env}` at {site}{similar}"))
        return failures

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old = with_defaults(DeploymentArgs, old_inputs or {k: v for k, v in outputs.items() if k in INPUT_KEYS})
        new = with_defaults(DeploymentArgs, news)  # `maxAttempts: 3` given or omitted is the same
        return diff_inputs(old, new, replace_keys=(set(old) | set(new)) - NO_REDEPLOY)

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            return "", {**inputs, **{k: UNKNOWN for k in COMPUTED}}
        settings = settings_of(self.ctx)
        site, uid = inputs["site"], int(inputs["jobUid"])
        progress = self.ctx.log.status(urn)
        started = time.monotonic()
        async with deadline(self.ctx.cancelled, timeout) as limit:
            session = Session(settings, limit.stop)
            try:
                nodes = await self._nodes(session, site, uid, inputs.get("nodes"))
                minimum = inputs.get("minDeployed", len(nodes))
                rid = f"{site}:{uid}:{inputs['environment']}"
                try:
                    outcome = await deployments.deploy(
                        session,
                        site,
                        nodes,
                        inputs["environment"],
                        progress,
                        key=inputs.get("key"),
                        vlan=inputs.get("vlan"),
                        attempts=int(inputs.get("maxAttempts", default(DeploymentArgs, "max_attempts"))),
                    )
                except deployments.DeployInterrupted as err:
                    raise PartialFailure(
                        limit.explain("interrupted while deploying (the running deployment was cancelled)"),
                        rid,
                        _outputs(inputs, err.outcome),
                    ) from None
                except G5kError as err:
                    raise ResourceFailure(f"deploying {inputs['environment']} on job {site}:{uid} failed: {err}") from err
            finally:
                session.close()
        outputs = _outputs(inputs, outcome)
        detail = f"{len(outcome.ok)}/{len(nodes)} node(s) deployed with {inputs['environment']}"
        if outcome.failed:
            detail += f"; failed: {', '.join(outcome.failed)}" + (f" ({'; '.join(outcome.errors)})" if outcome.errors else "")
        if len(outcome.ok) < minimum:
            raise PartialFailure(f"only {detail}, fewer than minDeployed={minimum}; `pulumi up` retries the failed nodes", rid, outputs)
        await self.ctx.log.info(urn, f"{detail} in {time.monotonic() - started:.1f} s")
        return rid, outputs

    async def _nodes(self, session: Session, site: str, uid: int, wanted: Optional[list[str]]) -> list[str]:
        job = await jobs.get(session, site, uid)
        if job is None or job.get("state") in jobs.GONE:
            raise ResourceFailure(f"job {site}:{uid} does not exist or has ended (state `{(job or {}).get('state', 'unknown')}`)")
        if "deploy" not in (job.get("types") or []):
            raise ResourceFailure(f'job {site}:{uid} was not submitted with type `deploy` (add types: ["deploy"] to the Job)')
        if job.get("state") != jobs.RUNNING:
            raise ResourceFailure(f"job {site}:{uid} is `{job.get('state')}`, not running yet; deploy once it runs")
        assigned = list(job.get("assigned_nodes") or [])
        if not wanted:
            return assigned
        chosen = [naming.fqdn(n, site) for n in wanted]
        foreign = [n for n in chosen if n not in assigned]
        if foreign:
            raise ResourceFailure(f"nodes {', '.join(foreign)} do not belong to job {site}:{uid} (its nodes: {', '.join(assigned)})")
        return chosen

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        if not outputs:
            raise ResourceFailure("importing a Deployment is not supported; declare it and run `pulumi up`")
        if not await job_of_step_alive(self.ctx, outputs):
            return None  # the job ended: its nodes are no longer ours, nor deployed
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
        if preview:
            return {**outputs, **news}
        failed = outputs.get("failedNodes") or []
        minimum = news.get("minDeployed", len(outputs.get("deployedNodes") or []) + len(failed))
        if failed and len(outputs.get("deployedNodes") or []) < minimum:
            # A partial deployment being retried: redeploy only the failed nodes.
            retry_inputs = {**news, "nodes": failed, "minDeployed": 0}
            _, again = await self.create(urn, retry_inputs, False, timeout)
            results = {**(outputs.get("results") or {}), **(again.get("results") or {})}
            merged = _from_results({**news}, results, list(outputs.get("deploymentUids") or []) + list(again.get("deploymentUids") or []))
            if len(merged["deployedNodes"]) < minimum:
                raise PartialFailure(
                    f"still only {len(merged['deployedNodes'])} node(s) deployed, fewer than minDeployed={minimum}", id, merged
                )
            return merged
        return {**outputs, **news}

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        session = Session(settings_of(self.ctx), self.ctx.cancelled)
        try:
            for uid in outputs.get("deploymentUids") or []:
                dep = None
                try:
                    dep = (await session.call(f"reading deployment {uid}", session.site(outputs["site"]).deployments.get, uid)).to_dict()
                except G5kError:
                    continue
                if dep.get("status") not in deployments.FINISHED:
                    await deployments.cancel(session, outputs["site"], uid)
        finally:
            session.close()


def _outputs(inputs: dict[str, Any], outcome: deployments.DeployOutcome) -> dict[str, Any]:
    return _from_results(inputs, outcome.results, outcome.deployments)


def _from_results(inputs: dict[str, Any], results: dict[str, Any], uids: list[str]) -> dict[str, Any]:
    return {
        **{k: v for k, v in inputs.items() if k in INPUT_KEYS},
        "deployedNodes": sorted(n for n, r in results.items() if r["state"] == "OK"),
        "failedNodes": sorted(n for n, r in results.items() if r["state"] != "OK"),
        "results": {
            n: {"state": r["state"], "attempts": r["attempts"], "deployment": r.get("deployment") or ""} for n, r in sorted(results.items())
        },
        "deploymentUids": uids,
    }
