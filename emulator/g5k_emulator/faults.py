"""Injected faults: bursts of error statuses and added latency on the real-API paths.

A rule matches by method and path regex (searched in the path without the version prefix)
and applies to the next `count` matching calls, then disappears.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from .errors import ApiError

STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    429: "Too Many Requests",
}


@dataclass
class Rule:
    count: int
    status: Optional[int] = None
    latency: float = 0.0
    methods: Optional[set[str]] = None
    path: Optional[re.Pattern[str]] = None

    def describe(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "status": self.status,
            "latency": self.latency,
            "methods": sorted(self.methods) if self.methods else None,
            "path": self.path.pattern if self.path else None,
        }


class Faults:
    def __init__(self) -> None:
        self.rules: list[Rule] = []

    def add(self, spec: Any) -> Rule:
        if not isinstance(spec, dict):
            raise ApiError(422, "a fault is a JSON object")
        status = spec.get("status")
        latency = spec.get("latency", 0)
        count = spec.get("count", 1)
        if status is not None and (not isinstance(status, int) or status not in STATUS_TEXT):
            raise ApiError(422, f"status must be one of {sorted(STATUS_TEXT)}")
        if not isinstance(latency, (int, float)) or latency < 0 or latency > 600:
            raise ApiError(422, "latency must be a number of seconds between 0 and 600")
        if status is None and not latency:
            raise ApiError(422, "a fault needs a status or a latency")
        if not isinstance(count, int) or count < 1:
            raise ApiError(422, "count must be a positive integer")
        methods = spec.get("methods")
        if methods is not None and (not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)):
            raise ApiError(422, "methods must be a list of HTTP methods")
        try:
            path = re.compile(spec["path"]) if spec.get("path") else None
        except (re.error, TypeError) as err:
            raise ApiError(422, f"path is not a valid regular expression: {err}") from None
        rule = Rule(count, status, float(latency), {m.upper() for m in methods} if methods else None, path)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def take(self, method: str, path: str) -> list[Rule]:
        """The rules that apply to this call (each one used up by one)."""
        hits = []
        for rule in list(self.rules):
            if rule.methods and method.upper() not in rule.methods:
                continue
            if rule.path and not rule.path.search(path):
                continue
            rule.count -= 1
            if rule.count <= 0:
                self.rules.remove(rule)
            hits.append(rule)
        return hits
