#!/usr/bin/env bash
# The main job: the iperf3 example on the local testbed — preview, up, show the outputs, destroy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/env.sh"
cd "$root/examples/iperf3"
# Stack state lives beside the project (a local file backend), encrypted with an empty passphrase
# unless you set one.
mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
stack=local
pulumi stack select --create "$stack" >/dev/null
trap 'echo "demo: releasing the testbed"; pulumi destroy --yes --skip-preview --non-interactive >/dev/null || true' EXIT
pulumi preview --non-interactive --diff
pulumi up --yes --skip-preview --non-interactive
echo; echo "=== stack outputs ==="
pulumi stack output
echo; echo "iperf3 bandwidth between server and client: $(pulumi stack output bandwidth_gbps) Gbit/s"
echo
pulumi destroy --yes --skip-preview --non-interactive
trap - EXIT
