"""Walking-skeleton figures, each with a baseline measured in the same run.

- `pulumi up` → N hosts SSH-ready (N = 2, 20), against the hand-written shell recipe of
  shared/reference/local-testbed.md for the same N (target: ≤ 10 s for 20 hosts);
- plugin start (port line written) against a bare `python -c pass`;
- engine build: cached (`engine/build.sh` when built), and cold with `--cold-engine`
  (fresh Go caches in a temp dir: downloads every module and compiles; several minutes).

Run as root from the repository: `make bench` or `python bench/skeleton.py [--cold-engine]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, text=True, **kw)
    return time.perf_counter() - start


def plugin_start() -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(ROOT / "provider/bin/pulumi-resource-testbed"), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return elapsed


def up_to_ready(count: int) -> tuple[float, float]:
    """Seconds for `pulumi up` (which returns once every host answers SSH), then `pulumi destroy`."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp, "p")
        shutil.copytree(ROOT / "bench/reservation", project)
        text = (project / "Pulumi.yaml").read_text()
        (project / "Pulumi.yaml").write_text(text.replace("../../", f"{ROOT}/"))
        env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp}", "PULUMI_HOME": f"{tmp}/home", "PULUMI_CONFIG_PASSPHRASE": ""}
        run = lambda *a: subprocess.run(
            ["pulumi", *a, "--non-interactive"], cwd=project, env=env, check=True, capture_output=True, text=True
        )  # noqa: E731
        run("stack", "init", "bench")
        run("config", "set", "count", str(count))
        start = time.perf_counter()
        run("up", "--yes", "--skip-preview")
        up = time.perf_counter() - start
        start = time.perf_counter()
        run("destroy", "--yes", "--skip-preview")
        return up, time.perf_counter() - start


def cold_engine_build() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PULUMI_TESTBED_CACHE": f"{tmp}/cache", "GOCACHE": f"{tmp}/gocache", "GOMODCACHE": f"{tmp}/gomod"}
        elapsed = timed([str(ROOT / "engine/build.sh")], env=env)
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-engine", action="store_true", help="also time a cold engine build (minutes)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    python = statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(5))
    plugin = statistics.median(plugin_start() for _ in range(5))
    print(f"plugin start (port line)      {plugin:6.2f} s   bare python {python:.2f} s   ratio {plugin / python:.1f}x")

    for count in (2, 20):
        raw = statistics.median(
            float(subprocess.run([str(ROOT / "bench/raw_recipe.sh"), str(count)], check=True, capture_output=True, text=True).stdout)
            for _ in range(args.runs)
        )
        ups, downs = zip(*(up_to_ready(count) for _ in range(args.runs)))
        up, down = statistics.median(ups), statistics.median(downs)
        print(
            f"pulumi up → {count:2d} hosts SSH-ready {up:6.2f} s   raw recipe {raw:.2f} s   ratio {up / raw:.1f}x   (destroy {down:.2f} s; median of {args.runs})"
        )

    cached = statistics.median(timed([str(ROOT / "engine/build.sh")]) for _ in range(5))
    print(f"engine build, cached          {cached * 1000:6.0f} ms")
    if args.cold_engine:
        print(f"engine build, cold            {cold_engine_build():6.0f} s   (fresh Go module and build caches)")


if __name__ == "__main__":
    main()
