"""`testbed:index:Fetch`: copy files or directories from the hosts of a reservation that match a
pattern into a local directory, one subfolder per host (EnOSlib's results gathering).

The transfer is the remote layer's (`remote/fetch.py`: a tar stream per host over the
reservation's SSH connections, every file's sha256 checked on both sides). Preview fetches
nothing. A change of `paths`, `destination`, `on`, `triggers` or of the matched machines
re-fetches in place; `timeout` and `deleteOnDestroy` changes are only recorded. A host that
fails (a missing path, unreachable) fails the step naming host and path; the files of the
other hosts (and what that host could send) are placed and recorded, and the next `pulumi up`
fetches again. Destroy keeps the fetched files (they are the experiment's results) unless
`deleteOnDestroy` is set: then exactly the files it recorded are removed (and the directories
that become empty), nothing else.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import reveal
from ..protocol.errors import ResourceFailure
from ..remote import PatternError, RemoteError
from ..remote.fetch import FetchedFile, HostFetch, fetch
from ..remote.patterns import warm_up as warm_up_patterns
from ..typed.model import input_names
from .base import CheckResult
from .fetch_schema import FETCH
from .steps import Step, inventory_of

INPUT_KEYS = input_names(FETCH.inputs)
RERUN_KEYS = {"paths", "destination", "on", "triggers"}
OUTPUTS = ("hosts", "files", "results", "totalFiles", "totalBytes")


class Fetch(Step):
    token = "testbed:index:Fetch"
    definition = FETCH
    computed = OUTPUTS
    rerun_keys = frozenset(RERUN_KEYS)
    ran_key = "files"

    @classmethod
    def warm_up(cls) -> None:
        warm_up_patterns()

    # ---- Check -------------------------------------------------------------------------------

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        inputs, failures = self.check_definition(news)
        dest = reveal(inputs.get("destination"))
        if isinstance(dest, str) and os.path.exists(dest) and not os.path.isdir(dest):
            failures.append(CheckFailure("destination", f"`{dest}` exists and is not a directory (relative to {os.getcwd()})"))
        self.check_pattern(inputs, failures)
        return CheckResult(inputs, failures)

    # ---- Run / Delete ----------------------------------------------------------------------

    def failed_before(self, outputs: dict[str, Any]) -> bool:
        return any(r.get("status") != "ok" for r in reveal(outputs.get("results")) or [])

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        destination = reveal(outputs.get("destination"))
        if not outputs.get("deleteOnDestroy") or not isinstance(destination, str):
            return  # the default: fetched files are results, and stay
        removed = delete_fetched(destination, reveal(outputs.get("files")) or [])
        await self.ctx.log.info(urn, f"removed {removed} fetched file(s) under {destination}")

    # ---- running ------------------------------------------------------------------------------

    async def run(self, urn: str, inputs: dict[str, Any], timeout: float) -> tuple[dict[str, Any], Optional[str]]:
        pattern = inputs.get("on", "all")
        limit_s = float(inputs.get("timeout") or 0) or timeout
        async with deadline(self.ctx.cancelled, limit_s) as limit:
            try:
                results = await fetch(
                    inventory_of(inputs),
                    pattern,
                    list(reveal(inputs["paths"])),
                    reveal(inputs["destination"]),
                    timeout=limit_s,
                    cancelled=limit.stop,
                    progress=self.ctx.log.status(urn),
                )
            except PatternError as err:
                raise ResourceFailure(f"`on: {pattern}`: {err}") from err
            except RemoteError as err:
                raise ResourceFailure(limit.explain(f"could not fetch: {err}")) from err
        outputs = {**inputs, **outputs_of(results)}
        failed = [r for r in results if r.status != "ok"]
        if failed:
            return outputs, limit.explain(failure_message(failed, len(results), reveal(inputs["destination"])))
        await self.ctx.log.info(
            urn,
            f"fetched {outputs['totalFiles']} file(s), {outputs['totalBytes']} bytes from "
            f"{len(results)} host(s) into {reveal(inputs['destination'])}",
        )
        return outputs, None


def outputs_of(results: list[HostFetch]) -> dict[str, Any]:
    files = [file_output(f) for r in results for f in r.files]
    return {
        "hosts": [r.host for r in results],
        "files": files,
        "results": [host_output(r) for r in results],
        "totalFiles": len(files),
        "totalBytes": sum(f["size"] for f in files),
    }


def failure_message(failed: list[HostFetch], total: int, destination: str) -> str:
    parts = [f"{r.host} ({r.status}): " + "; ".join(e.strip()[-400:] for e in r.errors) for r in failed]
    return (
        f"fetch failed on {len(failed)} of {total} host(s): "
        + "; ".join(parts)
        + f" (the files that arrived are in {destination}/<host>/ and recorded)"
    )


def delete_fetched(destination: str, files: list[dict[str, Any]]) -> int:
    """Remove the recorded files (only those) and the directories left empty under destination."""
    base = os.path.abspath(destination)
    removed, dirs = 0, set()
    for f in files:
        rel = f.get("path") if isinstance(f, dict) else None
        if not isinstance(rel, str):
            continue
        path = os.path.abspath(os.path.join(base, rel))
        if not path.startswith(base + os.sep):
            continue
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            continue
        parent = os.path.dirname(path)
        while parent.startswith(base + os.sep):
            dirs.add(parent)
            parent = os.path.dirname(parent)
    for d in sorted(dirs, key=len, reverse=True):
        try:
            os.rmdir(d)
        except OSError:
            pass  # not empty: something else lives there
    return removed


def file_output(f: FetchedFile) -> dict[str, Any]:
    """One fetched file as the schema's FetchedFile."""
    return {"host": f.host, "path": f.path, "remotePath": f.remote_path, "size": f.size, "sha256": f.sha256}


def host_output(r: HostFetch) -> dict[str, Any]:
    """One host's fetch as the schema's FetchHostResult."""
    return {
        "host": r.host,
        "status": r.status,
        "files": len(r.files),
        "bytes": sum(f.size for f in r.files),
        "errors": list(r.errors),
        "durationS": round(r.duration_s, 3),
    }
