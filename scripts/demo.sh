#!/usr/bin/env bash
# The main job: the iperf3 example on the local testbed — preview, up, destroy, then a short
# summary: the bandwidth and how long each phase (and each step of `pulumi up`) took. The full
# iperf3 report is the stack output `iperf3_report`; the demo saves it to a file before it
# releases the testbed and says where.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/env.sh"
cd "$root/examples/iperf3"
# Stack state lives beside the project (a local file backend; PULUMI_TESTBED_DEMO_STATE moves
# it), encrypted with an empty passphrase unless you set one.
state=${PULUMI_TESTBED_DEMO_STATE:-$PWD/.pulumi-state}
mkdir -p "$state"
export PULUMI_BACKEND_URL="file://$state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
stack=local
pulumi stack select --create "$stack" >/dev/null
trap 'echo "demo: releasing the testbed"; pulumi destroy --yes --skip-preview --non-interactive >/dev/null || true' EXIT
work=$(mktemp -d "${TMPDIR:-/tmp}/tb-demo.XXXXXX")
now() { date +%s.%N; }

t0=$(now)
pulumi preview --non-interactive --diff --suppress-outputs
t1=$(now)
# The up's own lines stay on screen; the outputs (the whole iperf3 JSON) are kept for the summary.
pulumi up --yes --skip-preview --non-interactive --suppress-outputs | tee "$work/up.log"
t2=$(now)
pulumi stack output --json >"$work/outputs.json"
pulumi stack export >"$work/state.json"
report="$work/iperf3-report.json"
pulumi stack output iperf3_report >"$report"
echo
pulumi destroy --yes --skip-preview --non-interactive
t3=$(now)
trap - EXIT

python3 - "$work" "$t0" "$t1" "$t2" "$t3" <<'EOF'
"""The demo's summary, from the stack's outputs and state as they were before destroy."""
import json
import re
import sys
from pathlib import Path

work, t0, t1, t2, t3 = Path(sys.argv[1]), *map(float, sys.argv[2:])
outputs = json.loads((work / "outputs.json").read_text())
resources = json.loads((work / "state.json").read_text())["deployment"].get("resources") or []
report = json.loads(outputs["iperf3_report"])
steps = {r["urn"].rsplit("::", 1)[-1]: r.get("outputs") or {} for r in resources if r["type"] == "testbed:index:Command"}
up_log = (work / "up.log").read_text()
reserved = re.search(r"reserved (.+?) on the (\w+) testbed in ([\d.]+) s", up_log)


# The engine's own time per step (`… created (0.29s)`), else the slowest host's run.
engine_took = {m.group(1): float(m.group(2)) for m in re.finditer(r"testbed:index:\w+ (\S+) created \(([\d.]+)s\)", up_log)}


def took(step: str) -> float:
    if step in engine_took:
        return engine_took[step]
    return max((r.get("durationS") or 0.0 for r in steps.get(step, {}).get("results") or []), default=0.0)


ready = re.search(r"ready after ([\d.]+ s)", (steps.get("iperf3-server", {}).get("results") or [{}])[0].get("stdout", ""))
client = (steps.get("iperf3-client", {}).get("hosts") or ["the client"])[0]
seconds = report["start"]["test_start"]["duration"]
rows = [
    ("preview", t1 - t0, ""),
    ("up", t2 - t1, ""),
    ("  nodes", engine_took.get("nodes", float(reserved.group(3)) if reserved else None),
     f"reserved {reserved.group(1)} on the {reserved.group(2)} testbed, SSH ready" if reserved else "reserved"),
    ("  install", took("install"), "iperf3 on every host"),
    ("  iperf3-server", took("iperf3-server"), f"started in the background, ready after {ready.group(1)}" if ready else ""),
    ("  iperf3-client", took("iperf3-client"), f"the measurement ({seconds} s)"),
    ("destroy", t3 - t2, "every host and process released"),
]
print()
print("=== summary ===")
print(f"bandwidth: {outputs['bandwidth_gbps']} Gbit/s, {client} -> {outputs['server_address']} "
      f"(the server on the experiment network), iperf3 for {seconds} s")
print("phases:")
for name, value, note in rows:
    shown = f"{value:6.2f} s" if value is not None else "      ? s"
    print(f"  {name:<16}{shown}   {note}".rstrip())
print(f"full iperf3 report (the stack output `iperf3_report`): {work / 'iperf3-report.json'}")
EOF
rm -f "$work/outputs.json" "$work/state.json" "$work/up.log"  # the state holds the (released) reservation's key
