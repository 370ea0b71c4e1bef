"""What no stack can release any more (issue 10: 2 and 9), under the real engine: the CLI's
cached keys go when their reservation is destroyed; `testbed gc` lists, then with --yes
removes, what removed stacks and interrupted creates left, and never touches what a stack
still holds or what another project made."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from testbed_provider.common.pids import start_time as process_start_time

from ..e2e.interrupt import alive, kill_mid_create, wait_for
from ..e2e.stack import Stack
from ..helpers import IS_ROOT, namespaces_of
from .conftest import TESTBED

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


@pytest.fixture
def cache():
    """A private CLI cache, shared by the `testbed` commands and the plugin (its Delete)."""
    path = tempfile.mkdtemp(prefix="tbgc-", dir="/tmp")  # short: sockets go beside the keys
    yield path
    for sock in glob.glob(os.path.join(path, "cli", "ctl-*", "*")):
        subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def cli(s: Stack, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([str(TESTBED), *args], cwd=s.dir, env=s.env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def workspaces(cache: str) -> set[str]:
    return set(glob.glob(os.path.join(cache, "cli", "ws-*")))


def reservation(s: Stack, stack: str) -> dict:
    deployment = json.loads(s.run("stack", "export", "--stack", stack).stdout)["deployment"]
    return next(r for r in deployment["resources"] if r["type"] == "testbed:index:Reservation")


def run_dir(r: dict) -> str:
    return r["outputs"]["testbedState"]["local"]["runDir"]


def provider_gone(r: dict) -> None:
    """The plugin that created the reservation has exited (until then gc keeps it: its
    `pulumi up` might not have recorded it yet)."""
    data = json.load(open(os.path.join(run_dir(r), "manifest.json")))
    wait_for(lambda: not alive(data["creatorPid"], data["creatorStartTime"]), what="the provider to exit")


def release(*found: dict) -> None:
    """After a failure: release what the test made and removed the stacks of, by its own ids."""
    from testbed_provider.hosts.netns import list_namespaces, teardown
    from testbed_provider.testbeds.local.testbed import LocalTestbed

    async def quiet(message: str) -> None:
        pass

    async def main() -> None:
        for r in found:
            if os.path.isdir(run_dir(r)):
                await LocalTestbed().release_unrecorded(run_dir(r), quiet)
            await teardown(list_namespaces(r["id"] + "-"), None)

    asyncio.run(main())


def test_destroy_removes_the_reservations_cli_files(tmp_path, cache):
    s = Stack(tmp_path, example="grow")
    s.env["PULUMI_TESTBED_CACHE"] = cache
    try:
        s.up()
        ssh = cli(s, "ssh", "server-1", "--", "hostname")  # a workspace, and a ControlMaster kept 60 s
        assert ssh.returncode == 0 and ssh.stdout.strip() == "server-1", ssh.stderr
        s.run("config", "set", "count", "2")
        s.up()
        assert cli(s, "inventory").returncode == 0  # another inventory (one host more), the same key
        files = workspaces(cache)
        assert len(files) == 2 and all("PRIVATE KEY" in open(os.path.join(w, "id")).read() for w in files)
        sockets = glob.glob(os.path.join(cache, "cli", "ctl-*", "*"))
        assert sockets
        s.run("destroy", "--yes", "--skip-preview")
        assert workspaces(cache) == set(), "the destroyed reservation's key stayed in the CLI cache"
        assert glob.glob(os.path.join(cache, "cli", "ctl-*")) == []
    finally:
        s.destroy()


def test_gc_lists_then_removes_what_no_stack_holds(tmp_path, cache):
    s = Stack(tmp_path / "here", example="nodes", stack="gone")
    s.env["PULUMI_TESTBED_CACHE"] = cache
    other = Stack(tmp_path / "elsewhere", example="nodes", stack="gone")  # same project name and stack, another directory
    other.env["PULUMI_TESTBED_CACHE"] = cache
    gone = stray = None
    cut = None
    try:
        s.up()
        assert cli(s, "ssh", "server-1", "--", "true").returncode == 0
        gone_ws = workspaces(cache)
        gone = reservation(s, "gone")
        s.run("stack", "init", "stray")
        s.up()
        stray = reservation(s, "stray")
        s.run("stack", "init", "keep")
        s.up()
        assert cli(s, "inventory").returncode == 0
        keep_ws = workspaces(cache) - gone_ws
        keep = reservation(s, "keep")
        other.up()
        elsewhere = reservation(other, "gone")
        s.run("stack", "init", "cut")
        cut = kill_mid_create(s, "nodes", kill_watchdog=True)  # nothing cleans that one by itself
        hosts = gone["outputs"]["testbedState"]["local"]["hosts"]
        lost_sshd = (hosts["server-1"]["sshdPid"], process_start_time(hosts["server-1"]["sshdPid"]))
        subprocess.run(["ip", "netns", "del", hosts["server-1"]["namespace"]], check=True)  # its sshd lives on, unnamed
        for name in ("gone", "stray"):
            s.run("stack", "rm", "--force", "--yes", name)
        for r in (gone, keep, elsewhere):
            provider_gone(r)
        shutil.rmtree(run_dir(stray))  # its hosts keep running

        listed = cli(s, "gc")
        assert listed.returncode == 0, listed.stderr
        text = listed.stdout
        would = text.split("would remove:", 1)[1]
        assert f"reservation {gone['id']} " in would and "its stack `gone` no longer exists" in would, text
        assert f"reservation {cut.id} " in would and "left by an interrupted create" in would, text
        assert f"namespace(s) {stray['id']}-* (no run dir): its run dir was deleted" in would, text
        assert all(w in would for w in gone_ws) and "no reservation of the project's stacks uses their key" in would, text
        assert keep["id"] not in text and not any(w in text for w in keep_ws)  # in use: not even named
        not_checked = text.split("not checked (left alone):", 1)[1].split("would remove:", 1)[0]
        assert f"reservation {elsewhere['id']} " in not_checked and f"testbed gc --cwd {other.dir}" in not_checked, text
        assert os.path.isdir(run_dir(gone)) and namespaces_of(gone["id"]) and os.path.isdir(cut.run_dir)  # a dry run

        removed = cli(s, "gc", "--yes")
        assert removed.returncode == 0, removed.stdout + removed.stderr
        assert namespaces_of(gone["id"]) == set() and not os.path.exists(run_dir(gone))
        assert not alive(*lost_sshd), "the sshd of a host whose namespace was deleted outlived gc"
        assert cut.leftovers() == []
        assert namespaces_of(stray["id"]) == set()
        assert workspaces(cache) == keep_ws
        assert namespaces_of(keep["id"]) and namespaces_of(elsewhere["id"])
        ssh = cli(s, "ssh", "--stack", "keep", "server-1", "--", "hostname")
        assert ssh.returncode == 0 and ssh.stdout.strip() == "server-1", ssh.stderr
        assert "nothing to remove" in cli(s, "gc").stdout
    finally:
        s.run("destroy", "--yes", "--skip-preview", "--stack", "keep", check=False)
        other.destroy()
        release(*[r for r in (gone, stray) if r])
        if cut is not None:
            release({"id": cut.id, "outputs": {"testbedState": {"local": {"runDir": cut.run_dir}}}})
