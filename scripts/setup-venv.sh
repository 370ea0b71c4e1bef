#!/usr/bin/env bash
# Creates .venv with the provider, the generated SDK and the test tools; re-runs pip only when
# their definitions change (a stamp keyed by the files that matter), so a second run is instant.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
version=$(tr -d '[:space:]' < engine/PULUMI_VERSION)
stamp=.venv/.testbed-stamp
want=$(cat engine/PULUMI_VERSION provider/pyproject.toml sdk/python/pyproject.toml emulator/pyproject.toml scripts/setup-venv.sh | sha256sum | cut -d' ' -f1)
# The console scripts are checked too: a new entry point needs the editable provider reinstalled
# (pip always reinstalls editables), which a matching stamp alone would skip.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ] \
   && [ -x .venv/bin/pulumi-resource-testbed ] && [ -x .venv/bin/testbed ]; then exit 0; fi

echo "setup-venv: installing the provider, the SDK and test tools into .venv (pulumi==$version)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The pulumi SDK must match the engine built from engine/PULUMI_VERSION.
.venv/bin/pip install -q "pulumi==$version" -e "provider[test,chameleon]" -e sdk/python ansible-core -e emulator "python-grid5000==1.2.5"
echo "$want" > "$stamp"
