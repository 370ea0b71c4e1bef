"""examples/myperf's whole lifecycle, as a user runs it: its CLI drives the real engine through
the Automation API on the local testbed (up with two clients, two benches, status, destroy)."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import IS_ROOT, ROOT, namespaces_of

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


@pytest.fixture
def myperf(tmp_path):
    project = tmp_path / "myperf"
    shutil.copytree(
        ROOT / "examples" / "myperf", project, ignore=shutil.ignore_patterns(".pulumi-state", "backups", "Pulumi.*.yaml", "__pycache__")
    )
    text = (project / "Pulumi.yaml").read_text()
    (project / "Pulumi.yaml").write_text(
        text.replace("../../provider/bin", str(ROOT / "provider" / "bin")).replace("../../.venv", str(ROOT / ".venv"))
    )
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        "PULUMI_HOME": str(tmp_path / "home"),
        "PULUMI_CONFIG_PASSPHRASE": "",
    }
    (tmp_path / "state").mkdir()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, str(project / "myperf.py"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"myperf {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.project = project
    run.env = env
    yield run
    run("destroy", check=False)


def test_myperf_lifecycle_on_the_local_testbed(myperf):
    assert "no current stack" in myperf("bench", check=False).stderr  # nothing deployed yet: a clear error

    up = myperf("local", "--clients", "2")
    # one server per client, each step done once its iperf3 listens (no retry loop in the measurement)
    assert "iperf3-server-1: create done" in up.stdout and "iperf3-server-2: create done" in up.stdout
    assert "server on the experiment network: 198.18." in up.stdout
    exported = subprocess.run(["pulumi", "stack", "export"], cwd=myperf.project, env=myperf.env, capture_output=True, text=True, check=True)
    [reservation] = [r["id"] for r in json.loads(exported.stdout)["deployment"]["resources"] if r["type"] == "testbed:index:Reservation"]
    assert len(namespaces_of(reservation)) == 4  # server, two clients, switch
    assert re.search(r"\[\s*\d+\.\ds\] nodes: SSH ready on \d/3 hosts", up.stdout)  # progress while waiting

    bench = myperf("bench", "-t", "1", "--", "-P", "2")
    rates = dict(re.findall(r"^(client-\d): ([\d.]+) Gbit/s$", bench.stdout, re.M))
    assert set(rates) == {"client-1", "client-2"} and all(float(r) > 0.1 for r in rates.values()), bench.stdout
    run = re.search(r"^run (\S+) from \S+Z to \S+Z:", bench.stdout, re.M).group(1)

    status = json.loads(myperf("status").stdout)
    assert status["bench"]["id"] == run and status["bench"]["args"] == "-P 2"
    assert status["roles"] == {"server": ["server-1"], "client": ["client-1", "client-2"]}
    assert status["monitoring"]["tunnel"] == "testbed tunnel --stack local server-1:9090 9090"  # monitoring deployed with the nodes

    again = myperf("bench", "-t", "1")  # a new run: only the measurement runs again
    assert "bench: update …" in again.stdout and "nodes: update" not in again.stdout and "deps: update" not in again.stdout

    saved = myperf("backup")
    lines = re.findall(r"^(client-\d): (client-\d/results/\S+\.json) \((\d+) bytes, sha256 ([0-9a-f]{16})…\)$", saved.stdout, re.M)
    assert len(lines) == 4, saved.stdout  # two runs on two clients
    for _host, path, size, digest in lines:
        local = myperf.project / "backups" / "local" / path
        assert local.stat().st_size == int(size) and hashlib.sha256(local.read_bytes()).hexdigest().startswith(digest)
        assert json.loads(local.read_text())["start"]["connected"]  # an iperf3 report
    # The metrics came too, and each run's window is drawn from them.
    metrics = re.search(r"^metrics snapshot: (\S+) \((\d+) bytes", saved.stdout, re.M)
    assert metrics and int(metrics.group(2)) > 0, saved.stdout
    assert Path(metrics.group(1)).parent == myperf.project / "backups" / "local" / "metrics"
    pngs = re.findall(
        r"^run (\S+): throughput of client-1, client-2, server-1 on the experiment network in (\S+\.png)$", saved.stdout, re.M
    )
    assert [r for r, _ in pngs] == [run, re.search(r"^run (\S+) from", again.stdout, re.M).group(1)], saved.stdout
    for _run, png in pngs:
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 5000

    down = myperf("destroy")
    assert "destroyed" in down.stdout
    assert namespaces_of(reservation) == set()  # every host of the stack is gone (not others': tests may run meanwhile)
