"""What a new user meets first, through the real engine (issue 10): Check messages as the README
writes them, a typo in a step's pattern caught by the first preview, host names shown (never
`[secret]`) in progress lines, and a refresh that names the host it lost."""

import os
import signal
import subprocess

import pytest

from ..helpers import IS_ROOT, netns_list
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


def ours() -> set[str]:
    return {ns for ns in netns_list() if ns.startswith(("tb-nodes-", "tb-my_nodes-"))}


@pytest.fixture
def newuser(tmp_path):
    s = Stack(tmp_path, example="newuser")
    yield s
    s.destroy()


@pytest.mark.parametrize(
    "config,expected",
    [
        ({"servers": "0"}, "has a problem: machines[0].count: must be at least 1 (got 0)"),
        ({"servers": "two"}, "has a problem: machines[0].count: must be a whole number of machines (got the string `two`)"),
        ({"resource": "my nodes!"}, "has a problem: name: must be 1-63 letters"),
        (
            {"servers": "300", "cidr": "198.18.0.0/24"},
            "has a problem: networks[0].cidr: `198.18.0.0/24` has 254 host address(es) but 301 host(s) join it",
        ),
        ({"on": "serverr"}, "has a problem: on: unknown role or host `serverr` (roles: client, server; hosts: server-1, client-1)"),
    ],
)
def test_bad_input_fails_the_first_preview_in_the_readme_form(newuser, config, expected):
    for key, value in config.items():
        newuser.run("config", "set", key, value)
    before = ours()
    preview = newuser.run("preview", check=False)
    text = preview.stdout + preview.stderr
    assert preview.returncode != 0, text
    assert expected in text, text
    assert "{<nil>}" not in text and "value {" not in text, text
    if "resource" in config:
        assert "defaults to the resource name `my nodes!`" in text, text
    assert ours() == before and newuser.resources() == []


def test_host_names_show_and_refresh_names_the_lost_host(newuser):
    newuser.up()
    newuser.run("config", "set", "servers", "3")
    grown = newuser.up()
    assert "adding server-2, server-3" in grown.stdout, grown.stdout
    assert "[secret]" not in grown.stdout, grown.stdout

    # server-2 dies outside Pulumi
    namespace = newuser.reservation()["outputs"]["testbedState"]["local"]["hosts"]["server-2"]["namespace"]
    for pid in subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    refresh = newuser.run("refresh", "--yes")
    assert "lost outside Pulumi: server-2" in refresh.stdout, refresh.stdout

    # the next preview shows the drift where it is, and names the host it recreates
    preview = newuser.run("preview", "--diff")
    text = preview.stdout + preview.stderr  # (diagnostics go to stderr with --diff)
    assert "recreates server-2 (lost outside Pulumi, seen by refresh)" in text, text
    assert "count: 2 => 3" in text, text
    assert "- machines" not in text and "+ machines" not in text and "- [0]" not in text, text  # not the whole list again

    repaired = newuser.up()
    assert "repairing server-2" in repaired.stdout or "adding server-2" in repaired.stdout, repaired.stdout
    newuser.run("preview", "--expect-no-changes")

    destroy = newuser.run("destroy", "--yes", "--skip-preview")
    assert "released reservation" in destroy.stdout and "server-1, server-2, server-3, client-1" in destroy.stdout, destroy.stdout
    assert "[secret]" not in destroy.stdout, destroy.stdout
