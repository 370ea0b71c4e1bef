"""schema.json from the typed definitions: `make schema` writes it, a test keeps it current.

The output follows Pulumi's package schema (https://www.pulumi.com/docs/iac/extending-pulumi/schema/):
object types and enums under `types`, resources with `inputProperties`/`requiredInputs` and
`properties`/`required`, functions with `inputs`/`outputs`, and the configuration twice (stack
`config.variables` and the Provider resource's `inputProperties`). A field's Prop becomes
`description`, `default`, `secret` and `replaceOnChanges`.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Iterable

from .model import ENUMS, TYPES, Config, Field, Function, Resource, Type, fields_of, input_fields, types_reachable


def type_spec(t: Type) -> dict[str, Any]:
    if t.kind == "any":
        return {"$ref": "pulumi.json#/Any"}
    if t.kind == "array":
        return {"type": "array", "items": type_spec(t.element)}
    if t.kind == "map":
        return {"type": "object", "additionalProperties": type_spec(t.element)}
    if t.kind == "object":
        return {"$ref": f"#/types/{TYPES[t.klass].token}"}
    if t.kind == "enum":
        return {"$ref": f"#/types/{ENUMS[t.klass].token}"}
    return {"type": t.kind}


def property_spec(f: Field) -> dict[str, Any]:
    """A property. A default becomes the schema's `default` only when Check records it too
    (`fill`): the SDKs write schema defaults into every program's arguments, which would make
    a provider-side default look given (`readyTimeout` without `readyPort`, a walltime beside
    `rawResources`) and change existing stacks' inputs; other defaults end the description."""
    spec = type_spec(f.type)
    if f.prop.secret:
        spec["secret"] = True
    spec["description"] = f.prop.description
    default = f.prop.default
    if isinstance(default, enum.Enum):
        default = default.value
    if default is not None and isinstance(default, (str, int, float, bool)):
        if f.prop.fill:
            spec["default"] = default
        else:
            shown = str(default).lower() if isinstance(default, bool) else (f"{default:g}" if isinstance(default, float) else default)
            spec["description"] = f"{f.prop.description.rstrip()} Default: `{shown}`."
    if f.prop.replace:
        spec["replaceOnChanges"] = True
    return spec


def properties(fields: Iterable[Field]) -> dict[str, Any]:
    return {f.name: property_spec(f) for f in fields}


def object_type(cls: type) -> dict[str, Any]:
    fields = fields_of(cls)
    out: dict[str, Any] = {"type": "object", "description": TYPES[cls].description, "properties": properties(fields)}
    required = [f.name for f in fields if f.required_input]
    if required:
        out["required"] = required
    return out


def enum_type(cls: type[enum.Enum]) -> dict[str, Any]:
    values = [{"name": m.name.title().replace("_", ""), "value": m.value} for m in cls]
    return {"type": "string", "description": ENUMS[cls].description, "enum": values}


def resource_spec(r: Resource) -> dict[str, Any]:
    inputs, outputs = input_fields(r.inputs), fields_of(r.outputs)
    return {
        "description": r.description,
        "inputProperties": properties(inputs),
        "requiredInputs": [f.name for f in inputs if f.required_input],
        "properties": properties(outputs),
        "required": [f.name for f in outputs if f.required_output],
    }


def function_spec(fn: Function) -> dict[str, Any]:
    inputs, outputs = input_fields(fn.inputs), fields_of(fn.outputs)

    def section(fields: list[Field], required: list[str]) -> dict[str, Any]:
        return {"properties": properties(fields), **({"required": required} if required else {})}

    return {
        "description": fn.description,
        "inputs": section(inputs, [f.name for f in inputs if f.required_input]),
        "outputs": section(outputs, [f.name for f in outputs if f.required_output]),
    }


def package_schema(header: dict[str, Any], config: Config, resources: list[Resource], functions: list[Function]) -> dict[str, Any]:
    """The whole package schema; `header` holds name, version, description, language settings."""
    variables = properties(input_fields(config.inputs))
    definitions: list[Resource | Function] = [*resources, *functions]
    return {
        **header,
        "config": {"variables": variables},
        "provider": {"description": config.description, "inputProperties": variables},
        "types": {
            (TYPES[c].token if c in TYPES else ENUMS[c].token): (object_type(c) if c in TYPES else enum_type(c))
            for c in types_reachable([config.inputs] + [d.inputs for d in definitions] + [d.outputs for d in definitions])
        },
        "resources": {r.token: resource_spec(r) for r in resources},
        "functions": {fn.token: function_spec(fn) for fn in functions},
    }


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
