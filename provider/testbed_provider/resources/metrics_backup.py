"""`testbed:services:MetricsBackup`: a Monitoring's metrics brought home as a Prometheus TSDB snapshot.

Prometheus' admin API takes an online snapshot (hard links of its blocks, the head block
written out) under `<dataDir>/snapshots/<name>`; Fetch's transfer (one tar stream, sha256 on
both sides, see remote/fetch.py) brings it into a staging directory beside the destination,
which is then moved into place as `<destination>/<stack>/metrics/<name>/` (never a half-written
backup where a complete one is expected) with a `backup.json` describing it (stack, collector,
time range, scrape interval: what `testbed metrics/plot --backup` need). The snapshot is then
removed from the collector. Like a Fetch, it re-runs when `triggers` change.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import uuid
from typing import Any, Optional

from ..common.deadlines import deadline
from ..common.results import CheckFailure
from ..protocol.codec import has_unknowns, reveal
from ..protocol.errors import ResourceFailure
from ..remote import PatternError, RemoteError, run_shell
from ..remote.fetch import fetch
from ..remote.patterns import warm_up as warm_up_patterns
from ..services import prometheus as prom
from ..typed.check import check_inputs, with_defaults
from .base import CheckResult
from .diff import DiffResult, Kind, diff_inputs
from .fetch import delete_fetched
from .monitoring import _stack_of
from .monitoring_schema import METRICS_BACKUP
from .steps import Step, inventory_of, targets

OUTPUTS = ("snapshot", "directory", "files", "totalFiles", "totalBytes", "minTime", "maxTime", "takenAt")
RERUN_KEYS = {"prometheus", "destination", "triggers"}
MANIFEST = "backup.json"


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def time_range(directory: str) -> tuple[Optional[int], Optional[int]]:
    """The oldest and newest sample times (ms) of a TSDB directory, from its blocks' meta.json."""
    lo: Optional[int] = None
    hi: Optional[int] = None
    for entry in sorted(os.listdir(directory)):
        meta = os.path.join(directory, entry, "meta.json")
        if os.path.isfile(meta):
            with open(meta) as f:
                m = json.load(f)
            lo = m["minTime"] if lo is None else min(lo, m["minTime"])
            hi = m["maxTime"] if hi is None else max(hi, m["maxTime"])
    return lo, hi


class MetricsBackup(Step):
    token = METRICS_BACKUP.token
    definition = METRICS_BACKUP
    computed = OUTPUTS
    rerun_keys = frozenset(RERUN_KEYS)
    ran_key = "snapshot"

    @classmethod
    def warm_up(cls) -> None:
        warm_up_patterns()

    async def check(self, name: str, olds: dict[str, Any], news: dict[str, Any], urn: str = "") -> CheckResult:
        checked = check_inputs(METRICS_BACKUP.inputs, news, "MetricsBackup")
        inputs, failures = checked.inputs, checked.failures
        host = (reveal(inputs.get("prometheus")) or {}).get("host") if isinstance(reveal(inputs.get("prometheus")), dict) else None
        inventory = inputs.get("inventory")
        if not failures and isinstance(host, str) and inventory is not None and not has_unknowns(inventory):
            try:
                names = {h["name"] for h in inventory_of(inputs)["hosts"]}
            except (KeyError, TypeError) as err:
                failures.append(CheckFailure("inventory", f"not a Reservation inventory ({err})"))
            else:
                if host not in names:
                    failures.append(CheckFailure("prometheus.host", f"no host `{host}` in the inventory: is it the same Reservation's?"))
        return CheckResult(inputs, failures)

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Inputs as usual, but the inventory only for the collector's machine (another host's
        change takes no new snapshot)."""
        old_inputs = old_inputs or {k: v for k, v in outputs.items() if k in self.input_keys()}
        d = METRICS_BACKUP.inputs
        result = diff_inputs(with_defaults(d, old_inputs), with_defaults(d, news), replace_keys=())
        result.detailed = {p: k for p, k in result.detailed.items() if not p.startswith("inventory")}
        if has_unknowns(news.get("inventory")) or has_unknowns(news.get("prometheus")):
            result.detailed.setdefault("hosts", Kind.UPDATE)
        elif _collector_machine(old_inputs) != _collector_machine(news):
            result.detailed["hosts"] = Kind.UPDATE
        return result

    async def run(self, urn: str, inputs: dict[str, Any], timeout: float) -> tuple[dict[str, Any], Optional[str]]:
        info = reveal(inputs["prometheus"])
        host, port, data_dir = info["host"], int(info["port"]), info["dataDir"]
        eff = with_defaults(METRICS_BACKUP.inputs, inputs)
        stack = _stack_of(urn) or "stack"
        base = os.path.abspath(os.path.join(reveal(eff["destination"]), stack, "metrics"))
        limit_s = float(inputs.get("timeout") or 0) or timeout
        progress = self.ctx.log.status(urn)
        inventory = inventory_of(inputs)
        started = datetime.datetime.now(datetime.timezone.utc)
        async with deadline(self.ctx.cancelled, limit_s) as limit:
            try:
                await progress(f"taking a TSDB snapshot on {host} (once every target was scraped again)")
                shot = await run_shell(
                    inventory,
                    host,
                    prom.snapshot_command(port, float(info.get("scrapeInterval") or 1)),
                    cancelled=limit.stop,
                    progress=progress,
                )
                if shot[0].status != "ok":
                    raise ResourceFailure(f"the snapshot failed on {host} ({shot[0].status}): {shot[0].stderr.strip()[-400:]}")
                name = shot[0].stdout.strip().splitlines()[-1]
                remote = f"{data_dir}/snapshots/{name}"
                staging = os.path.join(base, f".partial-{uuid.uuid4().hex[:8]}")
                try:
                    results = await fetch(inventory, host, [remote], staging, timeout=limit_s, cancelled=limit.stop, progress=progress)
                    r = results[0]
                    if r.status != "ok":
                        raise ResourceFailure(
                            limit.explain(f"fetching the snapshot from {host} failed ({r.status}): {'; '.join(r.errors)[-600:]}")
                        )
                    final = os.path.join(base, name)
                    if os.path.exists(final):
                        shutil.rmtree(final)
                    os.replace(os.path.join(staging, host, name), final)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                    await run_shell(inventory, host, f"rm -rf '{remote}'", cancelled=None)
            except PatternError as err:
                raise ResourceFailure(f"`prometheus.host: {host}`: {err}") from err
            except RemoteError as err:
                raise ResourceFailure(limit.explain(f"could not back up the metrics: {err}")) from err
        lo, hi = time_range(final)
        prefix = f"{host}/{name}/"
        files: list[dict[str, Any]] = sorted(
            ({"path": f.path[len(prefix) :] if f.path.startswith(prefix) else f.path, "size": f.size, "sha256": f.sha256} for f in r.files),
            key=lambda f: str(f["path"]),
        )
        manifest = {
            "stack": stack,
            "collector": host,
            "snapshot": name,
            "createdAt": started.isoformat().replace("+00:00", "Z"),
            "scrapeInterval": info.get("scrapeInterval"),
            "minTime": _iso(lo) if lo is not None else None,
            "maxTime": _iso(hi) if hi is not None else None,
            "files": files,
        }
        with open(os.path.join(final, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2)
        directory = os.path.relpath(final)
        outputs = {
            **inputs,
            "snapshot": name,
            "directory": directory,
            "files": files,
            "totalFiles": len(files),
            "totalBytes": sum(f["size"] for f in files),
            "minTime": manifest["minTime"] or "",
            "maxTime": manifest["maxTime"] or "",
            "takenAt": manifest["createdAt"],
        }
        await self.ctx.log.info(urn, f"metrics snapshot {name}: {len(files)} file(s), {outputs['totalBytes']} bytes in {directory}")
        return outputs, None

    async def delete(self, id: str, urn: str, outputs: dict[str, Any], timeout: float = 0) -> None:
        directory = outputs.get("directory")
        if not outputs.get("deleteOnDestroy") or not isinstance(directory, str):
            return  # the default: a backup is a result, and stays
        removed = delete_fetched(directory, [*(reveal(outputs.get("files")) or []), {"path": MANIFEST}])
        await self.ctx.log.info(urn, f"removed {removed} file(s) of the metrics backup {directory}")


def _collector_machine(inputs: dict[str, Any]) -> Any:
    info = reveal(inputs.get("prometheus"))
    if not isinstance(info, dict):
        return None
    return targets({"inventory": inputs.get("inventory"), "on": info.get("host", "")})
