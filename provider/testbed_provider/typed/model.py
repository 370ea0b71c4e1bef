"""The vocabulary of typed definitions: one Python declaration per resource, function and type.

A definition is a keyword-only dataclass whose fields carry their schema facts in `prop(...)`
(description, default, secret, enum, ranges, `replaceOnChanges`); the Python type hint is the
schema type (pulumi-go-provider's `infer` idea: the type is the schema). Everything else is
derived from these declarations: schema.json (typed.schema), the generic Check (typed.check)
and the reference docs (typed.docs). Controllers keep only the rules no type can express.

    @schema_type("testbed:index:Network", "An experiment network.")
    @dataclass(kw_only=True)
    class Network:
        id: str = prop("Network id.", pattern=NETWORK_ID, hint="a letter, then letters, digits, `_` or `-`")
        cidr: Optional[str] = prop("IPv4 network.")
"""

from __future__ import annotations

import dataclasses
import enum
import re
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

MISSING: Any = dataclasses.MISSING
META = "testbed"  # the dataclass field metadata key holding a Prop


@dataclass(frozen=True)
class Prop:
    """What the schema, Check and docs know of one field besides its type."""

    description: str
    default: Any = MISSING
    secret: bool = False
    replace: bool = False  # a change replaces the resource (`replaceOnChanges`)
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    min_items: Optional[int] = None
    pattern: Optional[re.Pattern[str]] = None
    hint: str = ""  # what a valid value is, for failures: "a shell command", "`H:MM:SS`"
    noun: str = ""  # what a list holds, for "must list at least one role"
    name: str = ""  # the schema name when not the camelCase of the Python name
    fill: bool = False  # Check writes the default into the inputs (state records it)
    input: bool = True  # an input too (False: output only)


def prop(
    description: str,
    *,
    default: Any = MISSING,
    secret: bool = False,
    replace: bool = False,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    min_items: Optional[int] = None,
    pattern: Optional[str] = None,
    hint: str = "",
    noun: str = "",
    name: str = "",
    fill: bool = False,
    output: bool = False,
) -> Any:
    """A field of a definition. Without `default`, an Optional field defaults to None (absent)
    and any other field is required. `output=True`: an output only, never an input."""
    meta = Prop(
        description,
        default,
        secret,
        replace,
        minimum,
        maximum,
        min_items,
        re.compile(pattern) if pattern else None,
        hint,
        noun,
        name,
        fill,
        not output,
    )
    if default is not MISSING and isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={META: meta})
    return dataclasses.field(default=None if default is MISSING else default, metadata={META: meta})


# ---- the type model --------------------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    """A schema type: a primitive, `any`, an array or map of `item`, an object (a registered
    dataclass) or an enum (a registered Enum)."""

    kind: str  # string, integer, number, boolean, any, array, map, object, enum
    item: Optional["Type"] = None
    cls: Optional[type] = None

    @property
    def element(self) -> "Type":
        """The item type of an array or map."""
        assert self.item is not None, self
        return self.item

    @property
    def klass(self) -> type:
        """The dataclass of an object, the Enum of an enum."""
        assert self.cls is not None, self
        return self.cls


PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def type_of(hint: Any) -> tuple[Type, bool]:
    """(the schema type of a Python type hint, whether it is Optional)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"only Optional[X] unions are supported, not {hint}")
        return type_of(rest[0])[0], True
    if hint is Any:
        return Type("any"), False
    if hint in PRIMITIVES:
        return Type(PRIMITIVES[hint]), False
    if origin in (list, typing.List):
        return Type("array", type_of(args[0])[0]), False
    if origin in (dict, typing.Dict):
        if args[0] is not str:
            raise TypeError(f"map keys must be strings: {hint}")
        return Type("map", type_of(args[1])[0]), False
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if hint not in ENUMS:
            raise TypeError(f"enum {hint.__name__} is not registered with @schema_enum")
        return Type("enum", cls=hint), False
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint not in TYPES:
            raise TypeError(f"{hint.__name__} is not registered with @schema_type")
        return Type("object", cls=hint), False
    raise TypeError(f"unsupported type in a definition: {hint!r}")


@dataclass(frozen=True)
class Field:
    """One resolved field: Python and schema names, type, optionality and its Prop."""

    py_name: str
    name: str
    type: Type
    optional: bool
    prop: Prop

    @property
    def has_default(self) -> bool:
        return self.prop.default is not MISSING

    @property
    def required_input(self) -> bool:
        return not self.optional and not self.has_default

    @property
    def required_output(self) -> bool:
        """Always in the state: filled in by Check, or required of the program."""
        return self.prop.fill or (not self.optional and not self.has_default)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


_fields_cache: dict[type, list[Field]] = {}


def fields_of(cls: type) -> list[Field]:
    """The fields of a definition dataclass, in declaration order (inherited ones first)."""
    if cls not in _fields_cache:
        hints = typing.get_type_hints(cls)  # each class of the MRO resolved in its own module
        out = []
        for f in dataclasses.fields(cls):
            meta = f.metadata.get(META)
            if meta is None:
                raise TypeError(f"{cls.__name__}.{f.name} is not declared with prop(...)")
            kind, optional = type_of(hints[f.name])
            out.append(Field(f.name, meta.name or camel(f.name), kind, optional, meta))
        _fields_cache[cls] = out
    return _fields_cache[cls]


# ---- registries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeInfo:
    token: str
    description: str
    label: str  # how failures name one value: "a machine group"


TYPES: dict[type, TypeInfo] = {}
ENUMS: dict[type, TypeInfo] = {}


def schema_type(token: str, description: str, label: str = "") -> Any:
    """Register a dataclass as the schema object type `token`."""

    def register(cls: type) -> type:
        TYPES[cls] = TypeInfo(token, description, label or f"a {cls.__name__}")
        return cls

    return register


def enum_values(cls: type) -> list[str]:
    """The schema values of a registered enum, in declaration order."""
    members: Iterable[enum.Enum] = cls  # type: ignore[assignment]  # an Enum class iterates its members
    return [m.value for m in members]


def schema_enum(token: str, description: str) -> Any:
    """Register a str Enum as the schema enum type `token` (its members' values are the schema's)."""

    def register(cls: type) -> type:
        ENUMS[cls] = TypeInfo(token, description, "")
        return cls

    return register


@dataclass(frozen=True)
class Resource:
    """A custom resource: `inputs` (the program's arguments) and `outputs` (its state, usually a
    subclass of inputs adding the computed fields)."""

    token: str
    description: str
    inputs: type
    outputs: type
    label: str = ""  # "Command": how failures name it (`Command accepts …`)
    example: str = ""  # a program using it, for the docs


@dataclass(frozen=True)
class Function:
    token: str
    description: str
    inputs: type
    outputs: type
    label: str = ""
    example: str = ""


@dataclass(frozen=True)
class Config:
    """The provider's configuration (`testbed:*` stack config and the Provider resource's inputs)."""

    description: str
    inputs: type


def types_reachable(classes: Iterable[type]) -> list[type]:
    """Object types and enums the fields of `classes` use, directly or not, in first-use order."""
    seen: list[type] = []

    def visit(t: Type) -> None:
        if t.item is not None:
            visit(t.item)
        if t.cls is not None and t.cls not in seen:
            seen.append(t.cls)
            if t.kind == "object":
                for f in fields_of(t.cls):
                    visit(f.type)

    for cls in classes:
        for f in fields_of(cls):
            visit(f.type)
    return seen


def input_fields(cls: type) -> list[Field]:
    return [f for f in fields_of(cls) if f.prop.input]


def input_names(cls: type) -> set[str]:
    """The schema names of a definition's inputs."""
    return {f.name for f in input_fields(cls)}


def default_of(cls: type, py_name: str) -> Any:
    """A field's declared default (controllers use it instead of their own constant)."""
    for f in fields_of(cls):
        if f.py_name == py_name:
            if not f.has_default:
                raise KeyError(f"{cls.__name__}.{py_name} has no default")
            return f.prop.default
    raise KeyError(f"{cls.__name__} has no field {py_name}")
