"""Command templates and readiness under the real engine: each host renders its own command with
the inventory's variables and `vars`; the renderings decide re-runs; a template error is a Check
failure naming the property; secret variables keep outputs secret; a background server's step
completes once it listens, and one that never does fails naming the host."""

import json

import pytest

from ..helpers import IS_ROOT
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")
TOKEN = "s3cr3t-t0ken-4f9a1c"


@pytest.fixture
def templates(tmp_path):
    s = Stack(tmp_path, example="templates")
    s.run("config", "set", "--secret", "token", TOKEN)
    yield s
    s.destroy()


def started(stack: Stack, step: str) -> list[str]:
    return [r["startedAt"] for r in stack.resource(step)["outputs"]["results"]]


def test_templates_render_per_host_rerun_on_what_they_render_and_fail_at_check(templates):
    templates.up()
    out = templates.outputs()
    server = out["addresses"]["experiment"]["server"][0]
    assert out["addresses"]["experiment"]["client"] == [out["hostAddresses"][h]["experiment"] for h in ("client-1", "client-2")]
    assert out["addresses"]["_ssh"]["server"] == [out["hostAddresses"]["server-1"]["_ssh"]] and server.startswith("198.18.")
    assert out["hello"] == {h: f"{h} -> {server}:5301 hello" for h in ("client-1", "client-2")}
    assert "ready after" in templates.resource("server")["outputs"]["results"][0]["stdout"]

    # a secret variable: the output is secret, and nothing of it is in plain text in the state
    assert out["secret"] == "[secret]" and templates.outputs(secrets=True)["secret"] == f"token={TOKEN}"
    assert TOKEN not in templates.state_text()

    assert templates.preview_ops() == {}, "a second up is a no-op"
    before = started(templates, "hello")
    templates.run("config", "set", "unused", "y")  # a variable no template uses: recorded, not re-run
    templates.up()
    assert started(templates, "hello") == before and templates.resource("hello")["inputs"]["vars"]["unused"] == "y"
    templates.run("config", "set", "greeting", "bonjour")  # one it uses: re-run, in place
    assert templates.preview_ops() == {"hello": "update"}
    templates.up()
    assert templates.outputs()["hello"]["client-2"] == f"client-2 -> {server}:5301 bonjour"
    assert all(a != b for a, b in zip(started(templates, "hello"), before))

    # a template error is a Check failure naming the property and the hosts, before anything runs
    templates.run("config", "set", "broken", "true")
    preview = templates.run("preview", check=False)
    assert preview.returncode != 0
    assert (
        "create: the template does not render on client-1, client-2: object of type 'dict' has no attribute 'experimnt'"
        in preview.stdout + preview.stderr
    ), preview.stdout + preview.stderr
    templates.run("config", "rm", "broken")

    # a background command that never gets ready fails the step, naming the host and why
    templates.run("config", "set", "never", "true")
    up = templates.run("up", "--yes", "--skip-preview", check=False)
    text = up.stdout + up.stderr
    assert up.returncode != 0
    assert (
        "command failed on 1 of 1 host(s): server-1 (rc=1): not ready after 1 s: nothing listens on TCP port 5399 "
        "(the command was stopped; its log is above); its log ends: waiting"
    ) in text, text
    templates.run("config", "rm", "never")
    templates.up()
    assert not any(r["urn"].endswith("::never") for r in templates.resources())
    exported = json.loads(templates.run("stack", "export").stdout)
    assert "renderedHashes" in next(r for r in exported["deployment"]["resources"] if r["urn"].endswith("::hello"))["inputs"]
