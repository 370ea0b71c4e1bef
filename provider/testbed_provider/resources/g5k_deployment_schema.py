"""Typed definition of testbed:g5k:Deployment: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..typed.model import Resource, prop, schema_type


@schema_type('testbed:g5k:DeploymentResult', 'Outcome of one node.')
@dataclass(kw_only=True)
class DeploymentResult:
    state: str = prop("`OK` or `KO` (Kadeploy's verdict of the node's last attempt).")
    attempts: int = prop('Deployments tried on this node.')
    deployment: Optional[str] = prop('Kadeploy workflow id of the last attempt.')


# testbed:g5k:Deployment
@dataclass(kw_only=True)
class DeploymentArgs:
    site: str = prop('Site of the job.')
    job_uid: int = prop("OAR id of a running job of type `deploy` (a Job's `uid`).")
    environment: str = prop('Environment to install, e.g. `debian12-min` (see `GET /sites/{site}/environments`).')
    key: Optional[str] = prop('Public SSH key(s) root accepts on the deployed nodes (text or URL).')
    nodes: Optional[list[str]] = prop('Nodes of the job to deploy (default: all of them).')
    vlan: Optional[str] = prop("KaVLAN id the nodes' primary interface ends in.")
    max_attempts: Optional[int] = prop('Deployments tried per node; KO nodes are redeployed (default 3, at most 10).')
    min_deployed: Optional[int] = prop('Fewest nodes that must end OK (default: all); below it the resource fails but keeps its state.')


@dataclass(kw_only=True)
class DeploymentState(DeploymentArgs):
    deployed_nodes: list[str] = prop('Nodes deployed OK.', output=True)
    failed_nodes: list[str] = prop('Nodes still KO after every attempt (always reported).', output=True)
    results: dict[str, DeploymentResult] = prop('Per-node outcome.', output=True)
    deployment_uids: list[str] = prop('Kadeploy workflow ids, oldest first.', output=True)


DEPLOYMENT = Resource('testbed:g5k:Deployment', 'A Kadeploy environment installed on nodes of a running `deploy` Job. KO nodes are redeployed up to `maxAttempts`; fewer than `minDeployed` OK nodes fails the resource but keeps its state (`pulumi up` retries the failed nodes). Any input change other than maxAttempts/minDeployed redeploys. Refresh drops it once the job has ended.', DeploymentArgs, DeploymentState)
