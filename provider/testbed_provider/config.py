"""Provider configuration: which testbed a stack runs on (`testbed:backend`) and, for
Grid'5000, how to reach its API and nodes (`testbed:g5k*`, see testbeds/g5k/settings.py).

Stack config reaches the default provider as strings (the engine also injects `version`);
an explicit `testbed.Provider(...)` sends typed values. Both are accepted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .common.results import CheckFailure
from .config_schema import ConfigArgs
from .protocol.codec import UNKNOWN, Secret, reveal
from .testbeds import BACKENDS, PLANNED_BACKENDS
from .testbeds.chameleon.settings import KEYS as CHAMELEON_KEYS
from .testbeds.chameleon.settings import ChameleonSettings
from .testbeds.chameleon.settings import parse_settings as parse_chameleon
from .testbeds.g5k.settings import KEYS as G5K_KEYS
from .testbeds.g5k.settings import G5kSettings, parse_settings
from .testbeds.static.settings import KEYS as STATIC_KEYS
from .testbeds.static.settings import StaticSettings
from .testbeds.static.settings import parse_settings as parse_static
from .typed.check import check_inputs
from .typed.model import Field, default_of, input_fields, input_names

# Keys the engine adds to every provider's config; not ours to validate.
ENGINE_KEYS = {"version", "pluginDownloadURL"}
KNOWN_KEYS = input_names(ConfigArgs)
FIELDS = {f.name: f for f in input_fields(ConfigArgs)}
_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class ProviderConfig:
    backend: str = default_of(ConfigArgs, "backend")
    g5k: Optional[G5kSettings] = None  # set when backend is g5k
    static: Optional[StaticSettings] = None  # set when backend is static
    chameleon: Optional[ChameleonSettings] = None  # set when backend is chameleon


def _as_typed(f: Field, value: Any) -> Any:
    """Stack config sends every value as a string: `true`, `30` are read as the key's type says;
    anything else is left as it is, for the Check to refuse."""
    if not isinstance(value, str):
        return value
    if f.type.kind == "boolean":
        return _WORDS.get(value.strip().lower(), value)
    if f.type.kind in ("number", "integer"):
        try:
            return int(value) if f.type.kind == "integer" else float(value)
        except ValueError:
            return value
    return value


def check_keys(values: dict[str, Any]) -> tuple[dict[str, Any], list[CheckFailure]]:
    """Known keys against the definition: (their values typed, failures naming the key). A
    secret is checked inside its wrapper, so that no failure quotes it."""
    typed = {k: _as_typed(FIELDS[k], v) for k, v in values.items()}
    wrapped = {k: Secret(v) if FIELDS[k].prop.secret else v for k, v in typed.items()}
    return typed, check_inputs(ConfigArgs, wrapped, "the provider configuration").failures


def parse_config(raw: dict[str, Any]) -> tuple[ProviderConfig, list[CheckFailure]]:
    values = {k: reveal(v) for k, v in raw.items() if k not in ENGINE_KEYS}
    values = {k: v for k, v in values.items() if not (k in G5K_KEYS and v == "")}  # `""`: a g5k key left unset, as ever
    failures = [
        CheckFailure(k, f"unknown configuration key `testbed:{k}` (known: {', '.join(sorted(KNOWN_KEYS))})")
        for k in values
        if k not in KNOWN_KEYS
    ]
    backend = values.get("backend", default_of(ConfigArgs, "backend"))
    if backend is UNKNOWN:
        return ProviderConfig(), failures
    if not isinstance(backend, str) or backend not in BACKENDS:  # a registry, not a type: planned ones are named
        planned = f" (`{backend}` is planned but not available yet)" if backend in PLANNED_BACKENDS else ""
        failures.append(CheckFailure("backend", f"unknown backend `{backend}`{planned}; available: {', '.join(sorted(BACKENDS))}"))
        return ProviderConfig(), failures
    if backend == "g5k":  # the g5k keys mean nothing to another backend, which ignores them
        g5k_values = {k: v for k, v in values.items() if k in G5K_KEYS}
        if any(v is UNKNOWN for v in g5k_values.values()):
            return ProviderConfig(backend=backend), failures
        typed, refused = check_keys(g5k_values)
        settings, g5k_failures = parse_settings(typed, {f.property for f in refused})
        return ProviderConfig(backend=backend, g5k=settings), failures + refused + g5k_failures
    if backend == "static":  # likewise the static keys
        static_values = {k: v for k, v in values.items() if k in STATIC_KEYS}
        if any(v is UNKNOWN for v in static_values.values()):
            return ProviderConfig(backend=backend), failures
        typed, refused = check_keys(static_values)
        static, static_failures = parse_static(typed)
        return ProviderConfig(backend=backend, static=static), failures + refused + static_failures
    if backend == "chameleon":  # likewise the chameleon keys
        chameleon_values = {k: v for k, v in values.items() if k in CHAMELEON_KEYS}
        if any(v is UNKNOWN for v in chameleon_values.values()):
            return ProviderConfig(backend=backend), failures
        typed, refused = check_keys(chameleon_values)
        if refused:
            return ProviderConfig(backend=backend), failures + refused
        chameleon, chameleon_failures = parse_chameleon(typed)
        return ProviderConfig(backend=backend, chameleon=chameleon), failures + chameleon_failures
    return ProviderConfig(backend=backend), failures
