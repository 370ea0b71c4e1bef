"""Play steps under the real engine: Ansible modules, variables, facts, another host's network
address in a template, idempotence, re-runs on change, failures, destroy tasks."""

import glob
import os
import uuid

import pytest

from ..helpers import IS_ROOT
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


@pytest.fixture
def play(tmp_path):
    marker = f"/var/tmp/testbed-play-{uuid.uuid4().hex}"  # /var/tmp is shared by local hosts and this machine
    s = Stack(tmp_path, example="play", config={"marker": marker})
    s.marker = marker
    yield s
    s.destroy()
    for path in glob.glob(marker + "*"):
        os.unlink(path)


def test_play_configures_hosts_idempotently_and_reruns_on_change(play):
    play.up()
    out = play.outputs()
    server, client = out["addresses"]["server-1"], out["addresses"]["client-1"]
    assert out["conf"]["client-1"] == f"server={server}\nme={client}\ncolor=blue\nport=none\nmode=plain\nclient-1"
    assert out["conf"]["server-1"] == f"server={server}\nme={server}\ncolor=blue\nport=5201\nmode=fast\nserver-1"
    assert out["changed"] == 8  # 4 changing tasks on 2 hosts (the read-back is `changed_when: false`)
    assert {s["host"]: (s["changed"], s["failed"]) for s in out["hostStats"]} == {"server-1": (4, 0), "client-1": (4, 0)}
    assert out["site"] == {"server-1": "site of server-1 color=blue", "client-1": "site of client-1 color=blue"}

    # an unchanged program runs nothing
    assert play.preview_ops() == {}
    # a trigger re-runs the play in place: nothing to change on the hosts
    play.run("config", "set", "trigger", "1")
    assert play.preview_ops() == {"setup": "update"}
    play.up()
    assert play.outputs()["changed"] == 0

    # editing a shipped template re-runs it; a variable change too
    template = play.dir / "server.conf.j2"
    template.write_text(template.read_text() + "edited=yes\n")
    assert play.preview_ops() == {"setup": "update"}
    play.up()
    out = play.outputs()
    assert out["changed"] == 2 and "edited=yes" in out["conf"]["server-1"]
    play.run("config", "set", "color", "red")
    play.up()
    assert "color=red" in play.outputs()["conf"]["client-1"] and play.outputs()["site"]["client-1"].endswith("color=red")
    # a playbook's own files are hashed too
    (play.dir / "templates" / "site.txt.j2").write_text("site v2 of {{ inventory_hostname }}\n")
    assert play.preview_ops() == {"site": "update"}
    play.up()
    assert play.outputs()["site"]["server-1"] == "site v2 of server-1"

    # a machine group's host variable: the inventory is updated in place (no host re-made) and
    # the plays on those hosts re-run
    hosts_before = play.reservation()["outputs"]["testbedState"]
    play.run("config", "set", "port", "6000")
    assert play.preview_ops() == {"nodes": "update", "setup": "update", "site": "update"}
    play.up()
    assert "port=6000" in play.outputs()["conf"]["server-1"]
    assert play.reservation()["outputs"]["testbedState"] == hosts_before

    # a failing task fails the step naming host, task and message; the play before is untouched
    play.run("config", "set", "failing", "true")
    failed = play.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "client-1: task `must fail` failed (rc=4)" in text and "boom-client-1" in text, text
    play.run("config", "rm", "failing")

    play.destroy()
    assert sorted(open(p).read() for p in glob.glob(play.marker + "-*")) == ["gone\n", "gone\n"]
