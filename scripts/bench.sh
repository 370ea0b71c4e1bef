#!/usr/bin/env bash
# Runs the benchmarks under bench/ (on demand; not part of the tests).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/env.sh"
python "$root/bench/skeleton.py" "$@"
