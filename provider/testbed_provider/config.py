"""Provider configuration: which testbed a stack runs on (`testbed:backend`) and, for
Grid'5000, how to reach its API and nodes (`testbed:g5k*`, see testbeds/g5k/settings.py).

Stack config reaches the default provider as strings (the engine also injects `version`);
an explicit `testbed.Provider(...)` sends typed values. Both are accepted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .protocol.codec import UNKNOWN, reveal
from .testbeds import BACKENDS, PLANNED_BACKENDS
from .testbeds.base import CheckFailure
from .testbeds.g5k.settings import KEYS as G5K_KEYS
from .testbeds.g5k.settings import G5kSettings, parse_settings

# Keys the engine adds to every provider's config; not ours to validate.
ENGINE_KEYS = {"version", "pluginDownloadURL"}
KNOWN_KEYS = {"backend"} | G5K_KEYS


@dataclass(frozen=True)
class ProviderConfig:
    backend: str = "local"
    g5k: Optional[G5kSettings] = None  # set when backend is g5k


def parse_config(raw: dict[str, Any]) -> tuple[ProviderConfig, list[CheckFailure]]:
    values = {k: reveal(v) for k, v in raw.items() if k not in ENGINE_KEYS}
    failures = [
        CheckFailure(k, f"unknown configuration key `testbed:{k}` (known: {', '.join(sorted(KNOWN_KEYS))})")
        for k in values
        if k not in KNOWN_KEYS
    ]
    backend = values.get("backend", "local")
    if backend is UNKNOWN:
        return ProviderConfig(), failures
    if not isinstance(backend, str) or backend not in BACKENDS:
        planned = f" (`{backend}` is planned but not available yet)" if backend in PLANNED_BACKENDS else ""
        failures.append(
            CheckFailure("backend", f"unknown backend `{backend}`{planned}; available: {', '.join(sorted(BACKENDS))}")
        )
        return ProviderConfig(), failures
    if backend == "g5k":
        g5k_values = {k: v for k, v in values.items() if k in G5K_KEYS}
        if any(v is UNKNOWN for v in g5k_values.values()):
            return ProviderConfig(backend=backend), failures
        settings, g5k_failures = parse_settings(g5k_values)
        return ProviderConfig(backend=backend, g5k=settings), failures + g5k_failures
    return ProviderConfig(backend=backend), failures
