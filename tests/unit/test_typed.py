"""Typed definitions: the schema, the generic Check and the docs they produce."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Optional

from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.typed.check import check_inputs
from testbed_provider.typed.docs import page, page_name
from testbed_provider.typed.model import Resource, default_of, prop, schema_enum, schema_type
from testbed_provider.typed.schema import object_type, resource_spec


@schema_enum("test:index:Colour", "A colour.")
class Colour(str, enum.Enum):
    RED = "red"
    GREEN = "green"


@schema_type("test:index:Part", "One part.", label="a part")
@dataclass(kw_only=True)
class Part:
    size: int = prop("Size.", minimum=1)
    label: Optional[str] = prop("Label.", pattern=r"[a-z]+", hint="lower-case letters")


@dataclass(kw_only=True)
class WidgetArgs:
    parts: list[Part] = prop("Parts.", min_items=1, noun="part")
    colour: Colour = prop("Colour.", default=Colour.RED, fill=True)
    token: Optional[str] = prop("Token.", secret=True)
    tags: Optional[dict[str, str]] = prop("Tags.")
    anything: Optional[list[Any]] = prop("Triggers.")
    ratio: Optional[float] = prop("Ratio.", maximum=1, replace=True)
    wait: float = prop("Seconds.", default=60.0)


@dataclass(kw_only=True)
class WidgetState(WidgetArgs):
    made: str = prop("When.", output=True)


WIDGET = Resource(
    "test:index:Widget", "A widget.", WidgetArgs, WidgetState, label="Widget", example='w = Widget("w", parts=[PartArgs(size=1)])'
)


def failures(inputs: dict[str, Any]) -> dict[str, str]:
    return {f.property: f.reason for f in check_inputs(WidgetArgs, inputs, "Widget").failures}


def test_the_schema_follows_the_types():
    spec = resource_spec(WIDGET)
    assert spec["requiredInputs"] == ["parts"]
    assert spec["required"] == ["parts", "colour", "made"]  # a filled default is always in state
    assert spec["inputProperties"]["parts"] == {"type": "array", "items": {"$ref": "#/types/test:index:Part"}, "description": "Parts."}
    assert spec["inputProperties"]["colour"] == {"$ref": "#/types/test:index:Colour", "description": "Colour.", "default": "red"}
    assert spec["inputProperties"]["token"] == {"type": "string", "secret": True, "description": "Token."}
    assert spec["inputProperties"]["tags"]["additionalProperties"] == {"type": "string"}
    assert spec["inputProperties"]["anything"]["items"] == {"$ref": "pulumi.json#/Any"}
    assert spec["inputProperties"]["ratio"]["replaceOnChanges"] is True
    # a default Check does not record stays the provider's: the SDK would send it otherwise
    assert spec["inputProperties"]["wait"] == {"type": "number", "description": "Seconds. Default: `60`."}
    assert "made" not in spec["inputProperties"] and "made" in spec["properties"]
    assert object_type(Part)["required"] == ["size"]
    assert default_of(WidgetArgs, "colour") is Colour.RED


def test_check_names_each_bad_value_by_its_path():
    assert failures({"parts": [{"size": 1, "label": "ok"}]}) == {}
    assert failures({}) == {"parts": "required: a list"}
    got = failures(
        {
            "parts": [{"size": 0}, {"size": "two", "label": "Bad", "extra": 1}, 3],
            "colour": "blue",
            "tags": {"a": 1},
            "ratio": 2,
            "token": Secret(5),
            "nope": True,
        }
    )
    assert got == {
        "parts[0].size": "must be at least 1 (got 0)",
        "parts[1].size": "must be a whole number (got the string `two`)",
        "parts[1].label": "must be lower-case letters (got the string `Bad`)",
        "parts[1].extra": "unknown property `extra` (a part accepts label, size)",
        "parts[2]": "must be a part (got `3`)",
        "colour": "must be one of `red`, `green` (got the string `blue`)",
        "tags.a": "must be a string (got `1`)",
        "ratio": "must be at most 1 (got 2)",
        "token": "must be a string (got a secret value)",
        "nope": "unknown property `nope` (Widget accepts anything, colour, parts, ratio, tags, token, wait)",
    }
    assert failures({"parts": []}) == {"parts": "must list at least one part"}


def test_unknowns_pass_and_defaults_are_filled():
    checked = check_inputs(WidgetArgs, {"parts": UNKNOWN, "token": Secret(UNKNOWN), "tags": None}, "Widget")
    assert checked.failures == []
    assert checked.inputs == {"parts": UNKNOWN, "token": Secret(UNKNOWN), "colour": "red"}
    assert failures({"parts": [UNKNOWN, {"size": UNKNOWN}]}) == {}


def test_a_page_per_definition():
    text = page(WIDGET, "resource")
    assert page_name("test:index:Widget") == "widget.md" and page_name("testbed:g5k:VlanAttachment") == "g5k-vlan-attachment.md"
    assert "| `parts` | `parts` | list[[Part](#part)] | required | Parts. |" in text
    assert '| `colour` | `colour` | [Colour](#colour) | default `"red"` | Colour. |' in text
    assert "optional, secret" in text and "optional, replaces" in text
    assert "## Outputs (besides the inputs)" in text and "| `made` |" in text
    assert "### Part" in text and "### Colour" in text and "`red`, `green`" in text
    assert 'w = Widget("w", parts=[PartArgs(size=1)])' in text
