"""Detailed diffs: which property paths changed, and whether that needs a replacement.

Produces the leaf paths the Pulumi CLI shows (`machines[1].count`), so a researcher sees exactly
what a `pulumi up` will change and why something is replaced. An unknown value (preview) in a
replace-triggering property counts as a replacement, never as "no change".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..protocol.codec import UNKNOWN, Secret


class Kind(enum.IntEnum):
    """Values of pulumirpc.PropertyDiff.Kind."""

    ADD = 0
    ADD_REPLACE = 1
    DELETE = 2
    DELETE_REPLACE = 3
    UPDATE = 4
    UPDATE_REPLACE = 5


_REPLACING = {Kind.ADD: Kind.ADD_REPLACE, Kind.DELETE: Kind.DELETE_REPLACE, Kind.UPDATE: Kind.UPDATE_REPLACE}


@dataclass
class DiffResult:
    detailed: dict[str, Kind] = field(default_factory=dict)
    delete_before_replace: bool = False

    @property
    def changed_keys(self) -> list[str]:
        return sorted({_top_key(p) for p in self.detailed})

    @property
    def replaces(self) -> list[str]:
        return sorted({_top_key(p) for p, k in self.detailed.items() if k in _REPLACING.values()})


def _top_key(path: str) -> str:
    for i, ch in enumerate(path):
        if ch in ".[":
            return path[:i]
    return path


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Secret) else value


def leaf_changes(old: Any, new: Any, path: str) -> Iterable[tuple[str, Kind]]:
    """Yield (path, kind) for every leaf where `new` differs from `old`."""
    old, new = _plain(old), _plain(new)
    if new is UNKNOWN or old is UNKNOWN:
        yield path, Kind.UPDATE
    elif isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else key
            if key not in old:
                if new[key] is not None:
                    yield sub, Kind.ADD
            elif key not in new:
                if old[key] is not None:
                    yield sub, Kind.DELETE
            else:
                yield from leaf_changes(old[key], new[key], sub)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(old):
                yield sub, Kind.ADD
            elif i >= len(new):
                yield sub, Kind.DELETE
            else:
                yield from leaf_changes(old[i], new[i], sub)
    elif old != new:
        if old is None:
            yield path, Kind.ADD
        elif new is None:
            yield path, Kind.DELETE
        else:
            yield path, Kind.UPDATE


def diff_inputs(
    old_inputs: Mapping[str, Any],
    new_inputs: Mapping[str, Any],
    replace_keys: Iterable[str],
    ignore_keys: Iterable[str] = (),
) -> DiffResult:
    """Compare checked inputs; a change under any of `replace_keys` forces a replacement."""
    replace_keys, ignore = set(replace_keys), set(ignore_keys)
    result = DiffResult()
    old = {k: v for k, v in old_inputs.items() if k not in ignore}
    new = {k: v for k, v in new_inputs.items() if k not in ignore}
    for path, kind in leaf_changes(old, new, ""):
        if _top_key(path) in replace_keys:
            kind = _REPLACING.get(kind, kind)
        result.detailed[path] = kind
    return result
