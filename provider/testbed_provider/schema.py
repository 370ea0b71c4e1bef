"""The package schema the provider serves (GetSchema) and takes its version from.

`schema.json` at the repository root is the single source of truth; an installed package
carries a copy made at build time.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "schema.json",  # source checkout (editable install)
    Path(__file__).resolve().parent / "schema.json",  # packaged copy
)


@functools.cache
def schema_text() -> str:
    for path in _CANDIDATES:
        if path.is_file():
            return path.read_text()
    raise FileNotFoundError("schema.json not found next to the provider package or at the repository root")


def schema_version() -> str:
    return json.loads(schema_text())["version"]
