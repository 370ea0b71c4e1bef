"""Fetch and getFacts under the real engine on the local testbed: files come back with the
checksums the hosts compute, a trigger re-fetches, a missing file fails naming host and path
while the other host's files are kept, facts reach a later step, destroy keeps results."""

import hashlib
import json

import pytest

from ..helpers import IS_ROOT
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path, example="fetch")
    yield s
    s.destroy()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def host_sums(out):
    """What `sha256sum` printed on each host: host → {remote path: sum}."""
    return {h: {"/root/results/" + line.split()[1]: line.split()[0] for line in text.splitlines()} for h, text in out["sums"].items()}


def check_files(stack, out):
    sums = host_sums(out)
    for f in out["files"]:
        local = stack.dir / "results" / f["path"]
        assert sha256(local) == f["sha256"] and local.stat().st_size == f["size"], f
        if f["remote_path"] in sums[f["host"]]:
            assert f["sha256"] == sums[f["host"]][f["remote_path"]], f
    return {(f["host"], f["path"]): f["sha256"] for f in out["files"]}


def test_fetch_brings_results_back_and_facts_feed_a_later_step(stack):
    assert stack.preview_ops().get("results") == "create"
    assert not (stack.dir / "results").exists()  # preview fetches nothing

    stack.up()
    out = stack.outputs(secrets=True)
    got = check_files(stack, out)
    assert sorted(got) == sorted(
        (h, f"{h}/{p}") for h in ("server-1", "client-1") for p in ("run.json", "logs/blob.bin", "logs/deep/note.txt")
    )
    assert got[("server-1", "server-1/logs/blob.bin")] != got[("client-1", "client-1/logs/blob.bin")]
    assert out["totalBytes"] == sum(f["size"] for f in out["files"])
    assert [r["status"] for r in out["fetchResults"]] == ["ok", "ok"]
    assert [f["path"] for f in out["scratchFiles"]] == ["client-1/deep/note.txt"]  # `~/…`, one host, scp layout

    # facts reached a later step: the server's memory and its address on the experiment network
    facts = out["serverFacts"]
    assert facts["interfaces"]["eth1"] == out["addresses"]["server-1"] and facts["rawHostname"] == "server-1"
    mem_kb = int(out["used"].split("MemTotal:")[1].split()[0])
    assert out["used"].splitlines()[0] == f"mem={mem_kb // 1024} server={out['addresses']['server-1']}"
    assert facts["memoryMb"] == mem_kb // 1024 and facts["vcpus"] >= 1 and facts["kernel"]

    assert stack.preview_ops() == {}  # nothing re-fetched when nothing changed

    # a trigger re-runs the writer and re-fetches: new content, checksums still agree
    stack.run("config", "set", "trigger", "1")
    assert stack.preview_ops() == {"write": "update", "results": "update"}
    stack.up()
    out2 = stack.outputs(secrets=True)
    got2 = check_files(stack, out2)
    assert got2[("server-1", "server-1/run.json")] != got[("server-1", "server-1/run.json")]
    assert json.loads((stack.dir / "results" / "server-1" / "run.json").read_text())["run"] == "1"

    # a file missing on one host fails the step naming host and path; the other host's file is kept
    stack.run("config", "set", "missing", "true")
    failed = stack.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "fetch failed on 1 of 2 host(s): client-1 (failed): /root/only-on-server.txt: no such file or directory" in text, text
    assert (stack.dir / "results" / "server-1" / "only-on-server.txt").read_text() == "only here\n"
    recorded = stack.resource("results")["outputs"]
    assert "server-1/only-on-server.txt" in [f["path"] for f in recorded["files"]]
    assert {r["host"]: r["status"] for r in recorded["results"]} == {"server-1": "ok", "client-1": "failed"}

    # bad input to getFacts is an error naming the argument
    stack.run("config", "rm", "missing")
    stack.run("config", "set", "factsOn", "db")
    failed = stack.run("up", "--yes", "--skip-preview", check=False)
    assert failed.returncode != 0
    assert (
        "getFacts failed: unknown role or host `db` (roles: client, server; hosts: server-1, client-1) (on)"
        in failed.stdout + failed.stderr
    ), failed.stdout + failed.stderr

    # destroy keeps the results; `deleteOnDestroy` removes exactly what that Fetch brought
    stack.destroy()
    assert stack.resources() == []
    assert (stack.dir / "results" / "client-1" / "logs" / "blob.bin").exists()
    assert list((stack.dir / "scratch").rglob("*")) == []
