"""The fast lane: tests that need no testbed and no engine run carry the `fast` marker
(`make test-fast` runs `-m fast`), by where they live rather than by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

FAST = ("unit", "plugin", "test_schema_and_sdk.py")
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).relative_to(HERE).parts[0] in FAST:
            item.add_marker(pytest.mark.fast)
