"""Fetch and getFacts rules: Check failures, what re-fetches, what destroy removes; the remote
fetch script run for real against a local directory (python3 | tar, as over ssh); facts curation."""

import asyncio
import hashlib
import json
import os
import subprocess

from testbed_provider.config import ProviderConfig
from testbed_provider.get_facts import camel_inventory
from testbed_provider.get_facts import check as check_facts
from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.remote.facts import check_subset, curate
from testbed_provider.remote.fetch import HostFetch, _place, remote_script
from testbed_provider.resources import fetch as fetch_module
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.diff import Kind
from testbed_provider.resources.fetch import Fetch, delete_fetched, failure_message

from .test_command_rules import INVENTORY, with_key

BASE = {"inventory": INVENTORY, "on": "all", "paths": ["/root/results"], "destination": "results"}


def controller():
    return Fetch(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))


def failures(news):
    return {f.property: f.reason for f in asyncio.run(controller().check("f", {}, news)).failures}


def test_check_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert failures(BASE) == {}
    assert asyncio.run(controller().check("f", {}, {k: v for k, v in BASE.items() if k != "on"})).inputs["on"] == "all"
    assert "required" in failures({"inventory": INVENTORY, "destination": "r"})["paths"]
    assert "required" in failures({"inventory": INVENTORY, "paths": ["/x"]})["destination"]
    assert "must be an absolute path (or one under `~/`" in failures({**BASE, "paths": ["results/x"]})["paths[0]"]
    assert failures({**BASE, "paths": ["~/results", "/root/*.json", UNKNOWN]}) == {}
    assert failures({**BASE, "paths": []})["paths"] == "must list at least one remote path"
    (tmp_path / "afile").write_text("x")
    assert "is not a directory" in failures({**BASE, "destination": "afile"})["destination"]
    assert "nobody" in failures({**BASE, "on": "nobody"})["on"]
    assert "unknown property `path`" in failures({**BASE, "path": "/x"})["path"]
    assert "true or false" in failures({**BASE, "deleteOnDestroy": "yes"})["deleteOnDestroy"]
    assert failures({**BASE, "timeout": -1})["timeout"] == "must be at least 0 (got -1)"
    assert failures({**BASE, "inventory": UNKNOWN}) == {}  # preview: known later


def test_what_refetches():
    diff = controller().diff
    assert diff({}, BASE, {**BASE, "paths": ["/root/other"]}).detailed == {"paths[0]": Kind.UPDATE}
    assert "triggers" in diff({}, BASE, {**BASE, "triggers": [1]}).detailed
    new_server = {**BASE, "inventory": with_key("AAAAserver", "AAAAnew")["inventory"]}
    assert diff({}, BASE, new_server).detailed == {"hosts": Kind.UPDATE}  # a new machine behind server-1
    assert diff({}, {**BASE, "on": "client"}, {**new_server, "on": "client"}).detailed == {"inventory": Kind.UPDATE}
    assert "hosts" in diff({}, BASE, {**BASE, "inventory": UNKNOWN}).detailed


def test_recorded_only_changes_fetch_nothing(monkeypatch):
    calls = []

    async def fake_fetch(*a, **kw):
        calls.append(a)
        return [HostFetch("server-1"), HostFetch("client-1")]

    monkeypatch.setattr(fetch_module, "fetch", fake_fetch)
    outputs = {**BASE, **fetch_module.outputs_of([HostFetch("server-1"), HostFetch("client-1")])}
    new = asyncio.run(controller().update("id", "urn", outputs, BASE, {**BASE, "timeout": 5, "deleteOnDestroy": True}, preview=False))
    assert calls == [] and new["deleteOnDestroy"] is True and new["totalFiles"] == 0
    asyncio.run(controller().update("id", "urn", outputs, BASE, {**BASE, "triggers": ["x"]}, preview=False))
    assert len(calls) == 1
    # a host that failed last time is fetched again even without a change
    failed = {**outputs, "results": [{**outputs["results"][0], "status": "failed"}, outputs["results"][1]]}
    asyncio.run(controller().update("id", "urn", failed, BASE, BASE, preview=False))
    assert len(calls) == 2
    assert asyncio.run(controller().create("urn", BASE, preview=True))[1]["files"] is UNKNOWN and len(calls) == 2


def test_destroy_removes_only_recorded_files(tmp_path):
    (tmp_path / "s" / "logs").mkdir(parents=True)
    (tmp_path / "s" / "a.json").write_text("a")
    (tmp_path / "s" / "logs" / "b").write_text("b")
    (tmp_path / "s" / "mine.txt").write_text("the researcher's")
    files = [{"path": "s/a.json"}, {"path": "s/logs/b"}, {"path": "../outside"}, {"path": "s/gone"}]
    assert delete_fetched(str(tmp_path), files) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine.txt", "s"]


def run_script(paths, staging, manifest="m.json"):
    """The remote script through python3 into `tar -x`, as `remote/fetch.py` runs it over ssh."""
    script = remote_script(paths, manifest)
    py = subprocess.Popen(["python3", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    tar = subprocess.Popen(["tar", "-x", "-f", "-", "-C", str(staging)], stdin=py.stdout)
    py.stdout.close()
    py.communicate(script.encode())
    assert tar.wait() == 0 and py.returncode == 0
    return json.loads((staging / manifest).read_text())


def test_remote_script_globs_directories_and_errors(tmp_path):
    src = tmp_path / "src"
    (src / "logs" / "deep").mkdir(parents=True)
    (src / "a.json").write_bytes(os.urandom(5000))
    (src / "b.json").write_text("{}")
    (src / "logs" / "x.log").write_text("x")
    (src / "logs" / "deep" / "y").write_text("y")
    (src / "other").mkdir()
    (src / "other" / "a.json").write_text("clash")
    staging = tmp_path / "staging"
    staging.mkdir()
    manifest = run_script([f"{src}/*.json", f"{src}/logs", f"{src}/missing", f"{src}/*.none", f"{src}/other/a.json"], staging)
    names = {f["path"]: f for f in manifest["files"]}
    assert sorted(names) == ["a.json", "b.json", "logs/deep/y", "logs/x.log"]
    assert names["a.json"]["sha256"] == hashlib.sha256((src / "a.json").read_bytes()).hexdigest()
    assert names["a.json"]["size"] == 5000 and names["a.json"]["remotePath"] == f"{src}/a.json"
    errors = {e["path"]: e["error"] for e in manifest["errors"]}
    assert errors[f"{src}/missing"] == "no such file or directory"
    assert errors[f"{src}/*.none"] == "matches nothing"
    assert "would both land as `a.json`" in errors[f"{src}/other/a.json"]

    # placing: verified against the manifest, moved under <host>/; a corrupted one is refused
    (staging / "b.json").write_text("tampered")
    result = HostFetch("h1")
    _place("h1", str(staging), str(tmp_path / "dest" / "h1"), manifest, result)
    assert sorted(f.path for f in result.files) == ["h1/a.json", "h1/logs/deep/y", "h1/logs/x.log"]
    assert (tmp_path / "dest" / "h1" / "a.json").read_bytes() == (src / "a.json").read_bytes()
    assert any("b.json: checksum mismatch" in e for e in result.errors)
    result.status = "failed"  # (_fetch_host's verdict when there are errors)
    message = failure_message([result], 2, "dest")
    assert message.startswith("fetch failed on 1 of 2 host(s): h1 (failed): ") and f"{src}/missing: no such file or directory" in message


def test_facts_rules():
    assert check_subset(["network", "hardware", "!facter", "min"]) == []
    assert "unknown fact subset 'netwrk'" in dict(check_subset(["netwrk"]))["subset[0]"]
    problems = {f.property: f.reason for f in check_facts({"inventory": INVENTORY, "on": "db", "subset": ["bogus"]})}
    assert set(problems) == {"subset[0]"}  # the pattern is checked once the other arguments are valid
    assert "unknown role or host `db`" in {f.property: f.reason for f in check_facts({"inventory": INVENTORY, "on": "db"})}["on"]
    assert "required" in {f.property: f.reason for f in check_facts({})}["inventory"]
    # the Python SDK sends an output-typed inventory to invokes under Python names
    snake = {**INVENTORY, "ssh": {"user": "root", "port": 22, "known_hosts": "k", "private_key": Secret("K")}}
    assert set(camel_inventory(Secret(snake)).value["ssh"]) == {"user", "port", "knownHosts", "privateKey"}
    facts = {
        "hostname": "s1",
        "interfaces": ["lo", "eth1"],
        "eth1": {"ipv4": {"address": "198.18.0.1", "prefix": "16"}, "macaddress": "aa", "mtu": 1500, "active": True},
        "lo": {"ipv4": {"address": "127.0.0.1", "prefix": "8"}},
        "memtotal_mb": 2048,
        "processor_vcpus": 4,
        "kernel": "6.1",
    }
    c = curate("server-1", facts)
    assert c["interfaces"][0] == {
        "name": "eth1",
        "ipv4": "198.18.0.1",
        "ipv4Prefix": 16,
        "ipv4Secondaries": [],
        "ipv6": [],
        "macAddress": "aa",
        "mtu": 1500,
        "active": True,
    }
    assert (c["memoryMb"], c["processorVcpus"], c["defaultIpv4"], c["facts"]) == (2048, 4, "", facts)


def test_a_command_built_from_facts_may_be_secret():
    """getFacts' result is secret (its inventory input is): a Command made from it must pass Check."""
    from testbed_provider.resources.command import Command

    command = Command(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))
    assert asyncio.run(command.check("c", {}, {"inventory": INVENTORY, "on": "all", "create": Secret("echo mem=2048")})).failures == []
    assert "non-empty" in asyncio.run(command.check("c", {}, {"inventory": INVENTORY, "create": Secret("  ")})).failures[0].reason
