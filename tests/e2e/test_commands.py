"""Command steps under the real engine: re-runs, no-op second up, failures, delete commands."""

import os
import uuid

import pytest

from ..helpers import IS_ROOT
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


@pytest.fixture
def steps(tmp_path):
    marker = f"/var/tmp/testbed-e2e-{uuid.uuid4().hex}"  # /var/tmp is shared by local hosts and this machine
    s = Stack(tmp_path, example="steps", config={"marker": marker})
    s.marker = marker
    yield s
    s.destroy()
    if os.path.exists(marker):
        os.unlink(marker)


def test_steps_run_once_rerun_on_change_and_delete_on_destroy(steps):
    steps.up()
    outputs = steps.outputs()
    assert outputs["greeting"] == "hello from server-1"
    assert outputs["everyone"] == {"server-1": "server-1", "client-1": "client-1", "client-2": "client-2"}
    started = steps.resource("greet")["outputs"]["results"][0]["startedAt"]

    # a second up with no change runs nothing
    assert steps.preview_ops() == {}
    steps.up()
    assert steps.resource("greet")["outputs"]["results"][0]["startedAt"] == started

    # a new environment value or trigger re-runs that step only, in place
    steps.run("config", "set", "message", "bonjour")
    assert steps.preview_ops() == {"greet": "update"}
    steps.up()
    assert steps.outputs()["greeting"] == "bonjour from server-1"
    steps.run("config", "set", "trigger", "1")
    assert steps.preview_ops() == {"greet": "update"}

    # destroy runs delete commands before releasing the hosts
    steps.run("destroy", "--yes", "--skip-preview")
    with open(steps.marker) as f:
        assert f.read().strip() == "deleted-from-server-1"


def test_a_failing_step_fails_up_naming_hosts_and_keeps_state(steps):
    steps.run("config", "set", "failing", "true")
    up = steps.run("up", "--yes", "--skip-preview", check=False)
    assert up.returncode != 0
    text = up.stdout + up.stderr
    assert "command failed on 2 of 2 host(s)" in text
    assert "client-1 (rc=3): boom-client-1" in text and "client-2 (rc=3): boom-client-2" in text, text
    # the failed step is in state with its results, the others completed
    failing = steps.resource("failing")
    assert [r["rc"] for r in failing["outputs"]["results"]] == [3, 3]
    assert steps.resource("greet")["outputs"]["results"][0]["rc"] == 0
    # fixing it retries the step; then destroy leaves nothing
    steps.run("config", "set", "failing", "false")
    steps.up()
    assert not any(r["urn"].endswith("::failing") for r in steps.resources())
