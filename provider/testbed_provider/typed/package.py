"""The package: every definition in one catalog, and `python -m testbed_provider.typed.package`
writing schema.json from it (`make schema`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..config_schema import CONFIG
from ..functions_schema import GET_BACKEND, GET_FACTS
from ..resources.command_schema import COMMAND
from ..resources.fetch_schema import FETCH
from ..resources.g5k_deployment_schema import DEPLOYMENT
from ..resources.g5k_job_schema import JOB
from ..resources.g5k_vlan_schema import VLANATTACHMENT
from ..resources.monitoring_schema import METRICS_BACKUP, MONITORING
from ..resources.netem_schema import NETEM
from ..resources.play_schema import PLAY
from ..resources.reservation_schema import RESERVATION
from .docs import pages
from .model import Function, Resource
from .schema import dumps, package_schema

HEADER: dict[str, Any] = {
    "name": "testbed",
    "displayName": "Testbed",
    "version": "0.1.0",
    "description": "Distributed-systems experiments as infrastructure-as-code: reserve nodes and networks on a testbed "
    "(a local testbed of network-namespace hosts, Grid'5000, others) and run experiment steps on them.",
    "keywords": ["pulumi", "testbed", "grid5000", "enoslib", "experiments", "category/infrastructure", "kind/native"],
    "license": "Apache-2.0",
    "publisher": "pulumi-testbed",
    "language": {
        "python": {
            "packageName": "pulumi_testbed",
            "requires": {"pulumi": ">=3.250.0,<4.0.0"},
            "respectSchemaVersion": True,
            "pyproject": {"enabled": True},
        }
    },
}
RESOURCES: list[Resource] = [RESERVATION, COMMAND, PLAY, JOB, DEPLOYMENT, VLANATTACHMENT, FETCH, MONITORING, METRICS_BACKUP, NETEM]
FUNCTIONS: list[Function] = [GET_BACKEND, GET_FACTS]


def schema() -> dict[str, Any]:
    return package_schema(HEADER, CONFIG, RESOURCES, FUNCTIONS)


def schema_text() -> str:
    return dumps(schema())


def generated_files() -> dict[str, str]:
    """Path (relative to the repository root) → content of every generated file but the SDK."""
    return {"schema.json": schema_text(), **{f"docs/{name}": text for name, text in pages(CONFIG, RESOURCES, FUNCTIONS).items()}}


def main(argv: list[str]) -> int:
    """`package ROOT`: write schema.json and docs/ under ROOT; stale generated docs are removed."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m testbed_provider.typed.package REPOSITORY_ROOT\n")
        return 2
    root = Path(argv[0])
    files = generated_files()
    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    for old in docs.glob("*.md"):
        if f"docs/{old.name}" not in files:
            old.unlink()
    for rel, text in files.items():
        (root / rel).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
