#!/usr/bin/env bash
# Installs the JS library the `testbed ui` page draws with (cytoscape, pinned in
# provider/testbed_provider/cli/ui/package-lock.json) from the npm registry into the git-ignored
# node_modules/ beside it, where the page's server reads it: the page needs no CDN and no internet.
# Idempotent: a stamp keyed by the lock file and this script makes a second run instant.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ui="$root/provider/testbed_provider/cli/ui"
stamp="$ui/node_modules/.testbed-stamp"
want=$(cat "$ui/package.json" "$ui/package-lock.json" "$root/scripts/setup-ui.sh" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$ui/node_modules/cytoscape/dist/cytoscape.min.js" ]; then exit 0; fi

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-ui: npm is missing and installing it (Debian packages nodejs, npm) needs root" >&2
    exit 1
  fi
  echo "setup-ui: installing npm (Debian packages nodejs, npm)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
fi
echo "setup-ui: installing the ui page's JS library (npm ci in ${ui#"$root"/})"
# --ignore-scripts: nothing of the package runs here; the page only needs its dist/ file.
(cd "$ui" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
echo "$want" > "$stamp"
