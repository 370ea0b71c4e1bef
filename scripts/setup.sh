#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Debian packages, the Pulumi engine (built once,
# cached outside the repo), the virtualenv with the provider and SDK, and the ui page's JS library.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup-system.sh"
"$root/engine/build.sh" >/dev/null
"$root/scripts/setup-venv.sh"
"$root/scripts/setup-ui.sh"
