"""A backup's metrics, queried by a temporary Prometheus on this machine.

A MetricsBackup is a TSDB snapshot directory (`<destination>/<stack>/metrics/<name>/`: blocks
with meta.json, chunks and index, plus our `backup.json`). Reading one with Prometheus itself
means any PromQL works exactly as it did on the collector. The server gets a private copy of
the snapshot (hard links: Prometheus never rewrites a block's files in place, it writes new
blocks and renames, so the backup cannot change), listens on 127.0.0.1 only, scrapes nothing,
keeps blocks for a century (retention counts from the newest block, and a backup is old by
nature), and is stopped and its copy removed on exit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from .stacks import CliError
from .tunnel import die_with_parent

PROMETHEUS = os.environ.get("TESTBED_PROMETHEUS", "/usr/bin/prometheus")
BACKUP_FILE = "backup.json"
# Every URL here is a forwarded or local 127.0.0.1 port: an http_proxy of the environment must not see it.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
READY_TIMEOUT = 120.0  # seconds: loading big blocks on a busy machine takes a while
POLL = 0.05


@dataclass(frozen=True)
class Backup:
    """A snapshot directory and what it says about itself."""

    path: str
    info: dict[str, Any]  # backup.json ({} when absent)
    min_time: float  # seconds since the epoch, over all blocks
    max_time: float

    @property
    def scrape_interval(self) -> Optional[float]:
        return parse_interval(self.info.get("scrapeInterval"))


def parse_interval(value: Any) -> Optional[float]:
    """Seconds, from a number or a Prometheus duration (`1s`, `500ms`, `1m`)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if isinstance(value, str):
        from .timeparse import parse_duration

        try:
            return parse_duration(value)
        except ValueError:
            return None
    return None


def _blocks(path: str) -> list[dict[str, Any]]:
    metas = []
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    for name in names:
        meta = os.path.join(path, name, "meta.json")
        if os.path.isfile(meta):
            try:
                with open(meta) as f:
                    metas.append(json.load(f))
            except (OSError, ValueError):
                continue
    return metas


def _is_snapshot(path: str) -> bool:
    return os.path.isfile(os.path.join(path, BACKUP_FILE)) or bool(_blocks(path))


def _info(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, BACKUP_FILE)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def find_backup(directory: str) -> Backup:
    """The snapshot `directory` is, or the newest one it holds (by backup.json's createdAt, then
    by name: Prometheus names snapshots `<UTC time>-<random>`), or the newest of its `metrics/`."""
    if not os.path.isdir(directory):
        raise CliError(f"no backup directory {directory}")
    path = directory
    if not _is_snapshot(path):
        base = os.path.join(path, "metrics") if os.path.isdir(os.path.join(path, "metrics")) else path
        candidates = [os.path.join(base, n) for n in sorted(os.listdir(base)) if _is_snapshot(os.path.join(base, n))]
        if not candidates:
            raise CliError(f"{directory} holds no metrics backup (no snapshot directory with {BACKUP_FILE} or blocks)")
        candidates.sort(key=lambda p: (str(_info(p).get("createdAt") or ""), os.path.basename(p)))
        path = candidates[-1]
    metas = _blocks(path)
    if not metas:
        raise CliError(f"the backup {path} holds no TSDB block (no */meta.json): nothing was recorded")
    lo = min(int(m.get("minTime", 0)) for m in metas) / 1000
    hi = max(int(m.get("maxTime", 0)) for m in metas) / 1000
    return Backup(os.path.abspath(path), _info(path), lo, hi)


def _copy_blocks(src: str, dst: str) -> None:
    """The blocks of `src` into `dst`, hard-linked where the file system allows, else copied."""

    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
            shutil.copy2(a, b)

    for name in os.listdir(src):
        if os.path.isfile(os.path.join(src, name, "meta.json")):
            shutil.copytree(os.path.join(src, name), os.path.join(dst, name), copy_function=link_or_copy)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with DIRECT.open(url + "/-/ready", timeout=5) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(f: Any) -> str:
    f.seek(0)
    lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    return "; ".join(lines[-3:])


@contextlib.contextmanager
def serve(backup: Backup) -> Iterator[str]:
    """A Prometheus serving `backup`'s blocks; yields its base URL (`http://127.0.0.1:PORT`)."""
    if not os.access(PROMETHEUS, os.X_OK):
        raise CliError(f"{PROMETHEUS} is missing: install Debian's `prometheus` (scripts/setup-system.sh) to read a backup")
    work = tempfile.mkdtemp(prefix="testbed-metrics-")
    try:
        data = os.path.join(work, "data")
        os.mkdir(data)
        _copy_blocks(backup.path, data)
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("scrape_configs: []\n")
        parent = os.getpid()
        for _attempt in range(3):  # the free port may be taken before Prometheus binds it
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ]
            with tempfile.TemporaryFile(dir=work) as log:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=work,
                    start_new_session=True,
                    preexec_fn=lambda: die_with_parent(parent),
                )
                try:
                    deadline = time.monotonic() + READY_TIMEOUT
                    while proc.poll() is None and not _ready(url):
                        if time.monotonic() > deadline:
                            raise CliError(f"the local Prometheus reading {backup.path} was not ready after {READY_TIMEOUT:.0f} s")
                        time.sleep(POLL)
                    if proc.poll() is None:
                        yield url
                        return
                    why = _tail(log)
                    if "address already in use" in why:
                        continue
                    raise CliError(f"the local Prometheus could not read {backup.path}: {why or f'exit status {proc.returncode}'}")
                finally:
                    if proc.poll() is None:
                        proc.terminate()
                        try:
                            proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
        raise CliError("the local Prometheus found no free port on 127.0.0.1")
    finally:
        shutil.rmtree(work, ignore_errors=True)
