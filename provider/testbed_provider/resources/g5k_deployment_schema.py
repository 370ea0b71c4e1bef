"""Typed definition of testbed:g5k:Deployment: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..typed.model import Resource, prop, schema_type
from .g5k_job_schema import JOB_UID_HINT, NODE, NODE_HINT, NONBLANK, SITE, SITE_HINT, VLAN_ID, VLAN_ID_HINT


@schema_type("testbed:g5k:DeploymentResult", "Outcome of one node.")
@dataclass(kw_only=True)
class DeploymentResult:
    state: str = prop("`OK` or `KO` (Kadeploy's verdict of the node's last attempt).")
    attempts: int = prop("Deployments tried on this node.")
    deployment: Optional[str] = prop("Kadeploy workflow id of the last attempt.")


# testbed:g5k:Deployment
@dataclass(kw_only=True)
class DeploymentArgs:
    site: str = prop("Site of the job.", pattern=SITE, hint=SITE_HINT)
    job_uid: int = prop("OAR id of a running job of type `deploy` (a Job's `uid`).", minimum=1, hint=JOB_UID_HINT)
    environment: str = prop(
        "Environment to install, e.g. `debian12-min` (see `GET /sites/{site}/environments`).",
        pattern=NONBLANK,
        hint="an environment name such as `debian12-min` (see GET /sites/{site}/environments)",
    )
    key: Optional[str] = prop(
        "Public SSH key(s) root accepts on the deployed nodes (text or URL).",
        pattern=NONBLANK,
        hint="public SSH key text or the URL of one",
    )
    nodes: Optional[list[str]] = prop(
        "Nodes of the job to deploy (all of them when omitted).",
        min_items=1,
        pattern=NODE,
        hint=NODE_HINT,
        noun="node name of the job (omit `nodes` to deploy every node of the job)",
    )
    vlan: Optional[str] = prop("KaVLAN id the nodes' primary interface ends in.", pattern=VLAN_ID, hint=VLAN_ID_HINT)
    max_attempts: int = prop("Deployments tried per node (at most 10); KO nodes are redeployed.", default=3, minimum=1, maximum=10)
    min_deployed: Optional[int] = prop(
        "Fewest nodes that must end OK (all of them when omitted); below it the resource fails but keeps its state.", minimum=0
    )


@dataclass(kw_only=True)
class DeploymentState(DeploymentArgs):
    deployed_nodes: list[str] = prop("Nodes deployed OK.", output=True)
    failed_nodes: list[str] = prop("Nodes still KO after every attempt (always reported).", output=True)
    results: dict[str, DeploymentResult] = prop("Per-node outcome.", output=True)
    deployment_uids: list[str] = prop("Kadeploy workflow ids, oldest first.", output=True)


DEPLOYMENT = Resource(
    "testbed:g5k:Deployment",
    "A Kadeploy environment installed on nodes of a running `deploy` Job. KO nodes are "
    "redeployed up to `maxAttempts`; fewer than `minDeployed` OK nodes fails the resource but "
    "keeps its state (`pulumi up` retries the failed nodes). Any input change other than "
    "maxAttempts/minDeployed redeploys. Refresh drops it once the job has ended.",
    DeploymentArgs,
    DeploymentState,
    label="a g5k Deployment",
)
