"""Pulumi property values <-> plain Python values.

The engine encodes properties as google.protobuf.Struct with special objects for secrets,
unknowns (preview), assets and resource references. Resources work on plain dicts where a
secret is a `Secret` and an unknown is `UNKNOWN`. Hand-written because the Python SDK's codecs
cannot emit unknowns from a provider (pulumi.provider.experimental refuses `Computed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from google.protobuf import json_format, struct_pb2

from .redact import REDACTOR

SIG_KEY = "4dabf18193072939515e22adb298388d"
SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270"
SIG_OUTPUT = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
SIG_RESOURCE = "5cf8f73096256a8f31e491e813e4eb8e"
# The untyped unknown, plus the typed variants the engine may send.
UNKNOWN_STRINGS = frozenset(
    {
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
        "030794c1-ac77-496b-92df-f27374a8bd58",
        "e48ece36-62e2-4504-bad9-02848725956a",
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
    }
)
UNKNOWN_WIRE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class _Unknown:
    """A value not known yet (preview): compares equal only to itself."""

    _instance: "_Unknown | None" = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Secret:
    """A value the engine must keep encrypted in state and hide in output."""

    value: Any

    def __repr__(self) -> str:  # never print the value by accident
        return "Secret(***)"


def decode_value(value: Any) -> Any:
    """Decode one JSON-like value from the wire (already converted from protobuf)."""
    if isinstance(value, str):
        return UNKNOWN if value in UNKNOWN_STRINGS else value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)  # the wire has only doubles; every number in our schema is an integer
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        sig = value.get(SIG_KEY)
        if sig == SIG_SECRET:
            inner = decode_value(value.get("value"))
            REDACTOR.register(inner)
            return Secret(inner)
        if sig == SIG_OUTPUT:
            if "value" not in value:
                return UNKNOWN
            inner = decode_value(value["value"])
            if value.get("secret"):
                REDACTOR.register(inner)
                return Secret(inner)
            return inner
        if sig == SIG_RESOURCE:
            return value.get("id") or value.get("urn")
        if sig is not None:
            return value  # assets and archives pass through untouched
        return {k: decode_value(v) for k, v in value.items()}
    return value


def encode_value(value: Any) -> Any:
    """Encode one plain value for the wire."""
    if value is UNKNOWN:
        return UNKNOWN_WIRE
    if isinstance(value, Secret):
        REDACTOR.register(value.value)
        return {SIG_KEY: SIG_SECRET, "value": encode_value(value.value)}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    raise TypeError(f"cannot encode a {type(value).__name__} as a Pulumi property")


def decode(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    """A Struct from the engine -> a plain dict with Secret/UNKNOWN markers."""
    if struct is None:
        return {}
    return decode_value(json_format.MessageToDict(struct))


def encode(props: Mapping[str, Any]) -> struct_pb2.Struct:
    """A plain dict with Secret/UNKNOWN markers -> a Struct for the engine."""
    out = struct_pb2.Struct()
    out.update(encode_value(props))
    return out


def has_unknowns(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, Secret):
        return has_unknowns(value.value)
    if isinstance(value, (list, tuple)):
        return any(has_unknowns(v) for v in value)
    if isinstance(value, Mapping):
        return any(has_unknowns(v) for v in value.values())
    return False


def reveal(value: Any) -> Any:
    """The value with every Secret unwrapped (for computing, never for logging)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, (list, tuple)):
        return [reveal(v) for v in value]
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    return value
