"""`make demo` (scripts/demo.sh): preview, up, destroy of examples/iperf3 on the local testbed,
then a short summary — the bandwidth and each phase's duration — instead of the iperf3 JSON,
whose full report is saved to a file."""

import json
import os
import re
import subprocess

import pytest

from ..helpers import IS_ROOT, ROOT

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


def test_demo_prints_a_short_summary_and_keeps_the_full_report(tmp_path):
    env = {
        **os.environ,
        "PULUMI_TESTBED_DEMO_STATE": str(tmp_path / "state"),
        "PULUMI_HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.run([str(ROOT / "scripts" / "demo.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert '"sum_received"' not in out and '"bits_per_second"' not in out, "the iperf3 JSON is not printed"
    summary = out[out.index("=== summary ===") :]
    assert re.search(
        r"^bandwidth: [\d.]+ Gbit/s, client-1 -> 198\.18\.\d+\.\d+ \(the server on the experiment network\), "
        r"iperf3 for 10 s$",
        summary,
        re.M,
    ), summary
    for phase in ("preview", "up", "  nodes", "  install", "  iperf3-server", "  iperf3-client", "destroy"):
        assert re.search(rf"^  {phase} +\d+\.\d\d s", summary, re.M), (phase, summary)
    assert "ready after" in summary
    report = re.search(r"^full iperf3 report \(the stack output `iperf3_report`\): (\S+)$", summary, re.M).group(1)
    assert json.loads(open(report).read())["end"]["sum_received"]["bits_per_second"] > 0
    assert sorted(os.listdir(os.path.dirname(report))) == ["iperf3-report.json"]  # nothing else (the state held a key)
    # everything was released
    resources = subprocess.run(
        ["pulumi", "stack", "export", "--stack", "local"],
        cwd=ROOT / "examples" / "iperf3",
        env={**env, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}", "PULUMI_CONFIG_PASSPHRASE": ""},
        capture_output=True,
        text=True,
    )
    assert json.loads(resources.stdout)["deployment"].get("resources") in (None, [])
