"""One generic Check: a definition walked against the program's inputs.

Types, required fields, enums, ranges, patterns, list and object shapes, unknown keys; values
unknown at preview pass (they are checked once known), secrets are checked through their
wrapper and keep it. Each failure names its path (`machines[0].count: must be at least 1`).
Rules no type can express (overlapping CIDRs, a pattern naming an unknown role, lookups in a
testbed's API) stay with the controllers, which run them on inputs that passed this.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..common.results import CheckFailure
from ..protocol.codec import UNKNOWN, Secret
from .model import ENUMS, TYPES, Field, Type, enum_values, input_fields

SHOWN = 40  # characters of a bad value quoted in a failure


def shown(value: Any) -> str:
    """A bad value as the user wrote it, short; a secret is never quoted."""
    if isinstance(value, Secret):
        return "a secret value"
    if isinstance(value, str):
        return f"the string `{value[:SHOWN]}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"`{str(value)[:SHOWN]}`"


def type_phrase(t: Type) -> str:
    if t.kind == "enum":
        return "one of " + ", ".join(f"`{v}`" for v in enum_values(t.klass))
    if t.kind == "object":
        return TYPES[t.klass].label
    return {
        "string": "a string",
        "integer": "a whole number",
        "number": "a number",
        "boolean": "true or false",
        "array": "a list",
        "map": "an object of names to values",
        "any": "a value",
    }[t.kind]


def words(n: int) -> str:
    return {1: "one", 2: "two", 3: "three"}.get(n, str(n))


@dataclass
class Checked:
    """The inputs (defaults filled where the definition says so) and the failures."""

    inputs: dict[str, Any]
    failures: list[CheckFailure] = field(default_factory=list)


def check_inputs(cls: type, inputs: dict[str, Any], label: str) -> Checked:
    """Check a resource's or function's inputs (absent and null are the same) against `cls`."""
    result = Checked({k: v for k, v in inputs.items() if v is not None})
    _check_object(cls, result.inputs, "", label, result.failures, fill=True)
    return result


def _check_object(cls: type, value: dict[str, Any], path: str, label: str, failures: list[CheckFailure], fill: bool = False) -> None:
    fields = input_fields(cls)
    names = {f.name for f in fields}
    for key in sorted(k for k in value if k not in names):
        failures.append(CheckFailure(_join(path, key), f"unknown property `{key}` ({label} accepts {', '.join(sorted(names))})"))
    for f in fields:
        sub = _join(path, f.name)
        item = value.get(f.name)
        if item is None:
            if f.required_input:
                failures.append(CheckFailure(sub, "required" + (f": {f.prop.hint}" if f.prop.hint else f": {type_phrase(f.type)}")))
            elif fill and f.prop.fill and f.has_default:
                value[f.name] = f.prop.default.value if isinstance(f.prop.default, enum.Enum) else f.prop.default
            continue
        _check_value(f, f.type, item, sub, failures)


def _check_value(f: Field, t: Type, value: Any, path: str, failures: list[CheckFailure]) -> None:
    if value is UNKNOWN:
        return
    plain = value.value if isinstance(value, Secret) else value
    if plain is UNKNOWN:
        return
    fail = lambda reason: failures.append(CheckFailure(path, reason))  # noqa: E731
    kind = t.kind
    if kind == "any":
        return
    if kind == "string" or kind == "enum":
        if not isinstance(plain, str):
            fail(f"must be {f.prop.hint or type_phrase(t)} (got {shown(value)})")
        elif kind == "enum" and plain not in enum_values(t.klass):
            fail(f"must be {type_phrase(t)} (got {shown(value)})")
        elif f.prop.pattern is not None and not f.prop.pattern.fullmatch(plain):
            fail(f"must be {f.prop.hint or 'of the form ' + f.prop.pattern.pattern} (got {shown(value)})")
        return
    if kind in ("integer", "number"):
        number = isinstance(plain, (int, float)) and not isinstance(plain, bool)
        if not number or (kind == "integer" and not isinstance(plain, int)):
            fail(f"must be {f.prop.hint or type_phrase(t)} (got {shown(value)})")
        elif f.prop.minimum is not None and plain < f.prop.minimum:
            fail(f"must be at least {_num(f.prop.minimum)} (got {_num(plain)})")
        elif f.prop.maximum is not None and plain > f.prop.maximum:
            fail(f"must be at most {_num(f.prop.maximum)} (got {_num(plain)})")
        return
    if kind == "boolean":
        if not isinstance(plain, bool):
            fail(f"must be true or false (got {shown(value)})")
        return
    if kind == "array":
        if not isinstance(plain, list):
            fail(f"must be {f.prop.hint if t is f.type and f.prop.hint else 'a list of ' + _plural(t.element)} (got {shown(value)})")
            return
        if f.prop.min_items is not None and t is f.type and len(plain) < f.prop.min_items:
            noun = f.prop.noun or "item"
            fail(f"must list at least {words(f.prop.min_items)} {noun}{'' if f.prop.min_items == 1 else 's'}")
        for i, item in enumerate(plain):
            _check_value(f, t.element, item, f"{path}[{i}]", failures)
        return
    if kind == "map":
        if not isinstance(plain, dict):
            what = f.prop.hint if t is f.type and f.prop.hint else "an object of names to " + _plural(t.element)
            fail(f"must be {what} (got {shown(value)})")
            return
        for k, item in plain.items():
            _check_value(f, t.element, item, _join(path, str(k)), failures)
        return
    if kind == "object":
        if not isinstance(plain, dict):
            fail(f"must be {TYPES[t.klass].label} (got {shown(value)})")
            return
        present = {k: v for k, v in plain.items() if v is not None}
        _check_object(t.klass, present, path, TYPES[t.klass].label, failures)


def _plural(t: Type) -> str:
    if t.kind == "object":
        return TYPES[t.klass].label.split(" ", 1)[-1] + "s"
    if t.kind == "enum":
        return ENUMS[t.klass].token.rsplit(":", 1)[-1] + " values"
    return {
        "string": "strings",
        "integer": "whole numbers",
        "number": "numbers",
        "boolean": "booleans",
        "any": "values",
        "array": "lists",
        "map": "objects",
    }[t.kind]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def with_defaults(cls: type, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with every declared default filled in, nested objects included: what a diff
    compares, so a default the SDK sends (it writes schema defaults into the arguments) or an
    older state lacks is no change."""
    out = dict(inputs)
    for f in input_fields(cls):
        value = out.get(f.name)
        if value is None and f.has_default:
            out[f.name] = f.prop.default.value if isinstance(f.prop.default, enum.Enum) else f.prop.default
        elif value is not None:
            out[f.name] = _defaults_in(f.type, value)
    return out


def _defaults_in(t: Type, value: Any) -> Any:
    if isinstance(value, Secret):
        return Secret(_defaults_in(t, value.value))
    if t.kind == "object" and isinstance(value, dict):
        return with_defaults(t.klass, value)
    if t.kind == "array" and isinstance(value, list):
        return [_defaults_in(t.element, v) for v in value]
    if t.kind == "map" and isinstance(value, dict):
        return {k: _defaults_in(t.element, v) for k, v in value.items()}
    return value
