#!/usr/bin/env bash
# Runs the benchmarks under bench/ (on demand; not part of the tests): `make bench`, or
# `scripts/bench.sh skeleton|fanout|play|g5k|monitoring|vms|testbeds [options]` for one of them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/env.sh"
case "${1:-all}" in
  skeleton) shift; python "$root/bench/skeleton.py" "$@" ;;
  fanout) shift; python "$root/bench/fanout.py" "$@" ;;
  play) shift; python "$root/bench/play.py" "$@" ;;
  g5k) shift; python "$root/bench/g5k.py" "$@" ;;
  monitoring) shift; python "$root/bench/monitoring.py" "$@" ;;
  vms) shift; python "$root/bench/vms.py" "$@" ;;
  testbeds) shift; python "$root/bench/testbeds.py" "$@" ;;
  all) python "$root/bench/skeleton.py"; echo; python "$root/bench/fanout.py"; echo; python "$root/bench/play.py"; echo; python "$root/bench/g5k.py"; echo; python "$root/bench/monitoring.py"; echo; python "$root/bench/vms.py"; echo; python "$root/bench/testbeds.py" ;;
  *) echo "usage: scripts/bench.sh [skeleton|fanout|play|g5k|monitoring|vms|testbeds|all] [options]" >&2; exit 2 ;;
esac
