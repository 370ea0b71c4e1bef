"""`testbed gc`'s rule for `tb-` namespaces without a run dir, on real namespaces: an empty one
is removable only once it is old enough not to be a create under way elsewhere (the age is
passed in, not waited for), and one that a stack of the project holds is kept."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess

import pytest

from testbed_provider.cli.gc import EMPTY_MIN_AGE, Plan, Project, _strays
from testbed_provider.hosts.netns import namespace_path, teardown
from testbed_provider.testbeds.local.manifest import backend_hash


@pytest.fixture
def stray(tmp_path):
    prefix = f"tb-gcunit-{secrets.token_hex(3)}-"
    names = [prefix + "sw", prefix + "server-1"]
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names), text=True, check=True)
    try:
        yield prefix, names
    finally:
        asyncio.run(teardown(names, None))


def plan_for(tmp_path, ids: dict[str, str] | None = None) -> Plan:
    return Plan(Project(str(tmp_path), "p", backend_hash(), {"dev"}, ids or {}, set()))


def test_an_empty_stray_is_removed_only_once_old_enough(tmp_path, stray):
    prefix, names = stray
    made = max(os.lstat(namespace_path(n)).st_mtime for n in names)
    young = plan_for(tmp_path)
    _strays(young, str(tmp_path / "run"), now=made + 1)
    assert [f.why for f in young.unchecked if prefix in f.what] == ["no host runs inside, made 1 s ago: a create may be under way"]
    assert not [f for f in young.removable if prefix in f.what]

    old = plan_for(tmp_path)
    _strays(old, str(tmp_path / "run"), now=made + EMPTY_MIN_AGE + 1)
    [found] = [f for f in old.removable if prefix in f.what]
    assert found.what == f"2 namespace(s) {prefix}* (no run dir)" and found.why == "no host runs inside"

    async def quiet(message: str) -> None:
        pass

    assert found.remove is not None
    asyncio.run(found.remove(quiet))
    assert not any(os.path.lexists(namespace_path(n)) for n in names)


def test_a_stray_a_stack_holds_is_kept(tmp_path, stray):
    prefix, names = stray
    plan = plan_for(tmp_path, ids={prefix.rstrip("-"): "dev"})
    _strays(plan, str(tmp_path / "run"), now=os.lstat(namespace_path(names[0])).st_mtime + 3600)
    assert [f.why for f in plan.kept if prefix in f.what] == ["held by stack `dev` (its next `pulumi up` restores the run dir)"]
    assert not [f for f in plan.removable + plan.unchecked if prefix in f.what]
