#!/usr/bin/env bash
# The checks `make test` runs before the tests (configuration: the root pyproject.toml):
# ruff's lint rules, ruff's formatting (`.venv/bin/ruff format .` fixes it) and mypy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
