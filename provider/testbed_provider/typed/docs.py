"""Reference docs from the typed definitions: one Markdown page per resource and function under
docs/, and one for the configuration; `make schema` writes them beside schema.json.

A page shows the description, an example program when the definition has one, the inputs
(Python name as the SDK spells it, schema name, type, required or default, description), the
outputs, and every object type and enum the page mentions, so nothing is looked up elsewhere.
"""

from __future__ import annotations

import enum
import re
from typing import Iterable, Union

from .model import ENUMS, TYPES, Config, Field, Function, Resource, Type, enum_values, fields_of, input_fields, types_reachable

Definition = Union[Resource, Function]


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def page_name(token: str) -> str:
    """`testbed:index:Reservation` → `reservation.md`, `testbed:g5k:Job` → `g5k-job.md`."""
    _, module, name = token.split(":")
    base = snake(name[:1].lower() + name[1:]).replace("_", "-")
    return (base if module == "index" else f"{module}-{base}") + ".md"


def type_name(t: Type) -> str:
    if t.kind == "array":
        return f"list[{type_name(t.element)}]"
    if t.kind == "map":
        return f"dict[str, {type_name(t.element)}]"
    if t.kind == "object":
        name = TYPES[t.klass].token.rsplit(":", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if t.kind == "enum":
        name = ENUMS[t.klass].token.rsplit(":", 1)[-1]
        return f"[{name}](#{name.lower()})"
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "any": "any"}[t.kind]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(f: Field) -> str:
    value = f.prop.default
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def field_table(fields: Iterable[Field], inputs: bool) -> list[str]:
    rows = ["| Python | schema | type | | description |", "|---|---|---|---|---|"]
    for f in fields:
        if inputs:
            need = "required" if f.required_input else (f"default {_default(f)}" if f.has_default else "optional")
        else:
            need = "always" if f.required_output else "optional"
        extras = [x for x, on in (("secret", f.prop.secret), ("replaces", f.prop.replace)) if on]
        rows.append(
            f"| `{snake(f.name)}` | `{f.name}` | {type_name(f.type)} | {', '.join([need, *extras])} | {_cell(f.prop.description)} |"
        )
    return rows


def _type_sections(classes: Iterable[type]) -> list[str]:
    out: list[str] = []
    for cls in types_reachable(classes):
        if cls in ENUMS:
            info = ENUMS[cls]
            out += ["", f"### {info.token.rsplit(':', 1)[-1]}", "", info.description, "", ", ".join(f"`{v}`" for v in enum_values(cls))]
        else:
            info = TYPES[cls]
            out += ["", f"### {info.token.rsplit(':', 1)[-1]}", "", f"`{info.token}`: {info.description}", ""]
            out += field_table(fields_of(cls), inputs=True)
    return out


def page(d: Definition, kind: str) -> str:
    lines = [f"# {d.token.rsplit(':', 1)[-1]}", "", f"`{d.token}` ({kind}). {d.description}", ""]
    if d.example:
        lines += ["## Example", "", "```python", d.example.strip("\n"), "```", ""]
    lines += ["## Inputs", ""] + field_table(input_fields(d.inputs), inputs=True)
    own_outputs = [f for f in fields_of(d.outputs) if kind == "function" or not any(f.name == i.name for i in input_fields(d.inputs))]
    heading = "## Outputs" if kind == "function" else "## Outputs (besides the inputs)"
    lines += ["", heading, ""] + field_table(own_outputs, inputs=False)
    types = _type_sections([d.inputs, d.outputs])
    if types:
        lines += ["", "## Types"] + types
    lines.append("")
    return "\n".join(lines) + "\n"


def config_page(config: Config) -> str:
    lines = [
        "# Provider configuration",
        "",
        config.description,
        "",
        "Set per stack with `pulumi config set testbed:<schema name> <value>` (secrets with `--secret`), or as "
        "arguments of an explicit `pulumi_testbed.Provider`.",
        "",
    ]
    lines += field_table(input_fields(config.inputs), inputs=True)
    return "\n".join(lines) + "\n"


def index_page(resources: list[Resource], functions: list[Function]) -> str:
    lines = [
        "# Reference",
        "",
        "Generated from the provider's typed definitions (`make schema`); do not edit.",
        "",
        "- [Provider configuration](config.md)",
    ]
    lines += [
        f"- [{r.token.rsplit(':', 1)[-1]}]({page_name(r.token)}) (`{r.token}`): {r.description.split('. ')[0].rstrip('.')}."
        for r in resources
    ]
    lines += [
        f"- [{f.token.rsplit(':', 1)[-1]}]({page_name(f.token)}) (`{f.token}`, function): {f.description.split('. ')[0].rstrip('.')}."
        for f in functions
    ]
    return "\n".join(lines) + "\n"


def pages(config: Config, resources: list[Resource], functions: list[Function]) -> dict[str, str]:
    """File name → content of every page."""
    out: dict[str, str] = {"README.md": index_page(resources, functions), "config.md": config_page(config)}
    for r in resources:
        out[page_name(r.token)] = page(r, "resource")
    for fn in functions:
        out[page_name(fn.token)] = page(fn, "function")
    return out
