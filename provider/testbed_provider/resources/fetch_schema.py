"""Typed definition of testbed:index:Fetch: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..typed.model import Resource, prop, schema_type
from .steps_schema import SECONDS_HINT, StepArgs


@schema_type("testbed:index:FetchedFile", "One fetched file.")
@dataclass(kw_only=True)
class FetchedFile:
    host: str = prop("Host it came from.")
    path: str = prop("Local path, relative to `destination` (`<host>/<name>`).")
    remote_path: str = prop("Its path on the host.")
    size: int = prop("Bytes.")
    sha256: str = prop("SHA-256 of the content (hex), the same on the host and here.")


@schema_type("testbed:index:FetchHostResult", "What a fetch did on one host.")
@dataclass(kw_only=True)
class FetchHostResult:
    host: str = prop("Host name.")
    status: str = prop("ok, failed (a path missing or unreadable, a checksum mismatch), unreachable or timeout.")
    files: int = prop("Files fetched from it.")
    bytes: int = prop("Bytes fetched from it.")
    errors: list[str] = prop("`<remote path>: <why>` for each problem.")
    duration_s: float = prop("How long it took, in seconds.")


# testbed:index:Fetch
@dataclass(kw_only=True)
class FetchArgs(StepArgs):
    paths: list[str] = prop(
        "Remote files, directories or globs (`/root/results/*.json`), absolute or under `~/` (the login user's home). A matched file lands as `<destination>/<host>/<its name>`, a directory as `<destination>/<host>/<its name>/…`.",
        min_items=1,
        noun="remote path",
        pattern=r"(/|~/|~$)[\s\S]*",
        hint="an absolute path (or one under `~/`, the login user's home)",
    )
    destination: str = prop(
        "Local directory, relative to the Pulumi program (created if missing); one subfolder per host.",
        pattern=r"\s*\S[\s\S]*",
        hint='a local directory (relative to the Pulumi program), e.g. "results"',
    )
    triggers: Optional[list[Any]] = prop("Any values: a change fetches again.")
    timeout: Optional[float] = prop(
        "Seconds before the transfer is stopped and reported (0 or omitted: no limit).", minimum=0, hint=SECONDS_HINT
    )
    delete_on_destroy: Optional[bool] = prop(
        "Remove the fetched files (exactly those recorded, and directories left empty) on destroy. Default false: results are kept."
    )


@dataclass(kw_only=True)
class FetchState(FetchArgs):
    hosts: list[str] = prop("The hosts fetched from.", output=True)
    files: list[FetchedFile] = prop(
        "Every file fetched: host, local path (relative to `destination`), remote path, size, sha256 (checked on both sides).", output=True
    )
    results: list[FetchHostResult] = prop("Per host: status, file count, bytes, errors.", output=True)
    total_files: int = prop("Files fetched, over all hosts.", output=True)
    total_bytes: int = prop("Bytes fetched, over all hosts.", output=True)


FETCH = Resource(
    "testbed:index:Fetch",
    "Copies files or directories from the hosts of a Reservation that match a pattern into a local directory, one subfolder per host, with sizes and sha256 checksums (verified against the host's) as outputs. Preview fetches nothing; a change of `paths`, `destination`, `on`, `triggers` or of the matched machines fetches again. A failing host (a missing path, unreachable) fails the step naming host and path; the other hosts' files are kept and recorded. Destroy keeps the files unless `deleteOnDestroy`.",
    FetchArgs,
    FetchState,
)
