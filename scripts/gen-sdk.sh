#!/usr/bin/env bash
# Regenerates sdk/python from schema.json with `pulumi package gen-sdk` (never edit the SDK by hand).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/env.sh
out=${1:-sdk}
pulumi package gen-sdk schema.json --language python --out "$out" >/dev/null
echo "generated $out/python from schema.json"
