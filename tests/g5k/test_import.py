"""`pulumi import testbed:g5k:Job` under the real engine against the emulator: the inputs read back
validate, `pulumi import` prints the Python that declares the job, and a program declaring that
job (the printed code, or the program that made it) changes nothing."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from ..e2e.stack import Stack
from .conftest import CLOCK_SPEED, EmulatorProcess, job_state

PROGRAM = """import pulumi
import pulumi_testbed as testbed

job = testbed.g5k.Job("{name}",
    {args})
pulumi.export("uid", job.uid)
"""
COMPLAINTS = (
    "failed to validate",
    "bug in the `testbed` provider",
    "has a problem",
    "not implemented",
)


@pytest.fixture
def emu(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_TESTBED_G5K_MAX_POLL", "0.3")
    with EmulatorProcess(tmp_path / "emu", clock_speed=CLOCK_SPEED, hosts=False) as emu:
        yield emu


def g5k_stack(tmp_path, emu: Any) -> Stack:
    stack = Stack(
        tmp_path,
        example="g5kjob",
        stack="g5k",
        config={
            "testbed:backend": "g5k",
            "testbed:g5kUri": emu.url,
            "testbed:g5kUsername": emu.username,
        },
    )
    stack.run("config", "set", "--secret", "testbed:g5kPassword", emu.password)
    return stack


def set_program(stack: Stack, code: str) -> None:
    (stack.dir / "__main__.py").write_text(code)


def import_job(stack: Stack, name: str, rid: str) -> tuple[str, str]:
    """`pulumi import`: (everything it printed, the code it asks to paste)."""
    done = stack.run("import", "testbed:g5k:Job", name, rid, "--yes", "--protect=false")
    printed = done.stdout + done.stderr
    for complaint in COMPLAINTS:
        assert complaint not in printed, printed
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("import pulumi"))
    return printed, "\n".join(lines[start:]) + "\n"


def job_call(code: str) -> dict[str, Any]:
    """The keyword arguments of the `testbed.g5k.Job(...)` call in `code`, as Python values."""
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and ast.unparse(n.func) == "testbed.g5k.Job"]
    assert len(calls) == 1, code
    import pulumi_testbed

    # Literals, and the SDK's enum members the printed code uses (`testbed.g5k.VlanType.KAVLAN`),
    # read back as their values.
    def value(node: ast.expr) -> Any:
        found = eval(compile(ast.Expression(node), "<import>", "eval"), {"__builtins__": {}, "testbed": pulumi_testbed})
        return _plain(found)

    return {str(k.arg): value(k.value) for k in calls[0].keywords if k.arg != "opts"}


def _plain(v: Any) -> Any:
    import enum

    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def test_a_job_submitted_by_hand_imports_and_its_declaration_changes_nothing(tmp_path, emu):
    from g5k_emulator.testing import grid5000_client

    site = grid5000_client(emu).sites["lyon"]
    resources = "{cluster='taurus'}/nodes=2+{type='kavlan'}/vlan=1,walltime=2:00:00"
    uid = site.jobs.create(
        {
            "resources": resources,
            "command": "sleep 3600",
            "name": "byhand",
            "types": ["deploy"],
        }
    ).uid
    emu.advance(60)
    emu.wait_for(lambda: job_state(emu, "lyon", uid) == "running")
    stack = g5k_stack(tmp_path, emu)
    set_program(stack, "import pulumi\n")
    try:
        _, code = import_job(stack, "imp", f"lyon:{uid}")
        assert job_call(code) == {
            "site": "lyon",
            "name": "byhand",
            "command": "sleep 3600",
            "types": ["deploy"],
            "walltime": "2:00:00",
            "nodes": [{"cluster": "taurus", "count": 2}],
            "vlan": {"type": "kavlan"},
        }
        job = stack.resource("imp")
        assert job["outputs"]["oarRequest"] == resources and job["outputs"]["uid"] == uid

        set_program(stack, code)  # the code to paste, as printed
        assert stack.preview_ops() == {}
        # and as its author would write it: defaults given or left out, other spellings
        natural = (
            'site="lyon", name="byhand", command="sleep 3600", types=["deploy"], walltime="2:00", queue="default",\n'
            '    nodes=[testbed.g5k.NodeRequestArgs(cluster="taurus", count=2)],\n'
            '    vlan=testbed.g5k.VlanRequestArgs(type="kavlan", count=1)'
        )
        set_program(stack, PROGRAM.format(name="imp", args=natural))
        assert stack.preview_ops() == {}
        set_program(
            stack,
            PROGRAM.format(name="imp", args=natural.replace("count=2", "count=3")),
        )
        # a real change still replaces it
        assert stack.preview_ops() == {"imp": "replace"}
    finally:
        set_program(stack, "import pulumi\n")
        stack.destroy()
    assert job_state(emu, "lyon", uid) in ("error", "terminated")


def test_a_job_of_the_provider_imports_as_its_program_declares_it(tmp_path, emu):
    """State lost (`pulumi state delete`), the job re-imported: its tag's request hash tells how
    it was asked for (no cluster named, here), so the program that made it matches the import."""
    stack = g5k_stack(tmp_path, emu)
    args = 'site="lyon", nodes=[testbed.g5k.NodeRequestArgs(count=2)], vlan=testbed.g5k.VlanRequestArgs(type="kavlan"), walltime="1:30"'
    program = PROGRAM.format(name="job", args=args)
    set_program(stack, program)
    try:
        stack.up()
        made = stack.resource("job")
        uid, urn = made["outputs"]["uid"], made["urn"]
        assert made["outputs"]["oarRequest"] == "nodes=2+{type='kavlan'}/vlan=1,walltime=1:30:00"
        stack.run("state", "delete", urn, "--yes")
        assert not any(r["urn"] == urn for r in stack.resources())

        _, code = import_job(stack, "job", f"lyon:{uid}")
        imported = stack.resource("job")
        assert imported["inputs"]["nodes"] == [{"count": 2}], json.dumps(imported["inputs"])
        assert job_call(code)["nodes"] == [{"count": 2}] and "name" in job_call(code)
        # the program that made it: no change, no replacement
        assert stack.preview_ops() == {}
        stack.up()
        assert job_state(emu, "lyon", uid) == "running" and stack.outputs()["uid"] == uid
    finally:
        stack.destroy()
    assert job_state(emu, "lyon", uid) in ("error", "terminated")
