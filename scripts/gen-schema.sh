#!/usr/bin/env bash
# Regenerates schema.json and docs/ from the provider's typed definitions, then the SDK from
# schema.json (never edit any of them by hand: edit the definitions, then run `make schema`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/env.sh
python -m testbed_provider.typed.package "$root"
echo "generated schema.json and docs/ from the typed definitions"
scripts/gen-sdk.sh
