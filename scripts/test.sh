#!/usr/bin/env bash
# Runs the whole test suite: unit, provider over gRPC, end to end with the real Pulumi engine.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/env.sh
leftover() { ip netns list 2>/dev/null | awk '{print $1}' | grep -cE '^(tb-|tbemu-)' || true; }
before=$(leftover)
python -m pytest -p no:cacheprovider "$@" tests
after=$(leftover)
if [ "$after" -gt "$before" ]; then
  echo "test: the suite left $((after - before)) testbed or emulator namespace(s) behind:" >&2
  ip netns list | grep -E '^(tb-|tbemu-)' >&2
  exit 1
fi
