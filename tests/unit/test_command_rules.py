"""Command diff and re-run rules: what re-runs, what is only recorded, and why."""

import asyncio
import copy

import pytest

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.remote import HostResult
from testbed_provider.resources import command as command_module
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.command import Command
from testbed_provider.resources.diff import Kind

KNOWN = "server-1,198.19.0.1 ssh-ed25519 AAAAserver\nclient-1,198.19.0.2 ssh-ed25519 AAAAclient\n"
INVENTORY = {
    "hosts": [
        {"name": "server-1", "address": "198.19.0.1", "roles": ["server"], "networks": [], "user": "root", "port": 22},
        {"name": "client-1", "address": "198.19.0.2", "roles": ["client"], "networks": [], "user": "root", "port": 22},
    ],
    "groups": {"server": ["server-1"], "client": ["client-1"]},
    "ssh": {"user": "root", "port": 22, "knownHosts": KNOWN, "privateKey": Secret("KEY-MATERIAL-1234")},
}
BASE = {"inventory": INVENTORY, "on": "server", "create": "iperf3 -s"}


def controller():
    return Command(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))


def with_key(host_line_old: str, host_line_new: str):
    inv = copy.deepcopy(INVENTORY)
    inv["ssh"]["knownHosts"] = KNOWN.replace(host_line_old, host_line_new)
    return {**BASE, "inventory": inv}


def test_create_change_reruns_in_place():
    result = controller().diff({}, BASE, {**BASE, "create": "iperf3 -s -p 5202"})
    assert result.detailed == {"create": Kind.UPDATE} and result.replaces == []


def test_new_machine_behind_a_matched_name_reruns():
    result = controller().diff({}, BASE, with_key("AAAAserver", "AAAAnewserver"))
    assert result.detailed == {"hosts": Kind.UPDATE}


def test_inventory_change_elsewhere_is_recorded_not_rerun():
    result = controller().diff({}, BASE, with_key("AAAAclient", "AAAAnewclient"))
    assert result.detailed == {"inventory": Kind.UPDATE}


def test_unknown_inventory_in_preview_is_a_change():
    assert "hosts" in controller().diff({}, BASE, {**BASE, "inventory": UNKNOWN}).detailed


@pytest.fixture
def calls(monkeypatch):
    recorded = []

    async def fake_run_shell(inventory, pattern, command, **kw):
        recorded.append((pattern, command, kw.get("background")))
        return [HostResult("server-1", 0, "out", "", "2026-01-01T00:00:00Z", 0.1)]

    async def fake_stop(inventory, pattern, tag, **kw):
        recorded.append((pattern, "stop", tag))
        return []

    monkeypatch.setattr(command_module, "run_shell", fake_run_shell)
    monkeypatch.setattr(command_module, "stop_background", fake_stop)
    return recorded


def test_changing_only_the_delete_command_runs_nothing(calls):
    outputs = {**BASE, "results": [{"host": "server-1", "rc": 0, "status": "ok"}], "stdout": "out", "hosts": ["server-1"]}
    new = asyncio.run(controller().update("id1", "urn", outputs, BASE, {**BASE, "delete": "pkill x"}, preview=False))
    assert calls == [] and new["delete"] == "pkill x" and new["stdout"] == "out"


def test_a_step_that_failed_last_time_is_retried(calls):
    outputs = {**BASE, "results": [{"host": "server-1", "rc": 3, "status": "failed"}], "hosts": ["server-1"]}
    asyncio.run(controller().update("id1", "urn", outputs, BASE, dict(BASE), preview=False))
    assert calls == [("server", "iperf3 -s", None)]


def test_rerunning_a_background_step_stops_the_old_process_first(calls):
    old = {**BASE, "background": True}
    outputs = {**old, "results": [{"host": "server-1", "rc": 0, "status": "ok"}], "hosts": ["server-1"]}
    asyncio.run(controller().update("id1", "urn", outputs, old, {**old, "create": "iperf3 -s -p 5202"}, preview=False))
    assert calls == [("server", "stop", "cmd-id1"), ("server", "iperf3 -s -p 5202", "cmd-id1")]


def test_secret_command_makes_its_output_secret(calls):
    rid, outputs = asyncio.run(controller().create("urn", {**BASE, "create": Secret("echo s3cr3t-token")}, preview=False))
    assert isinstance(outputs["stdout"], Secret)
    rid, outputs = asyncio.run(controller().create("urn", dict(BASE), preview=False))
    assert outputs["stdout"] == "out", "the inventory's secret key alone does not hide a command's output"


def test_messages_name_hosts_of_a_secret_inventory_but_never_its_key():
    """The engine sends the whole inventory as a secret (for its key); host names stay readable."""
    from testbed_provider.protocol.redact import Redactor

    redactor = Redactor()
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    inventory = copy.deepcopy(INVENTORY)
    inventory["ssh"]["privateKey"] = pem
    redactor.register(Secret(inventory))
    assert redactor.scrub("client-1 failed") == "[secret] failed"
    redactor.declassify([inventory["hosts"], inventory["groups"], {k: v for k, v in inventory["ssh"].items() if k != "privateKey"}])
    text = redactor.scrub(f"client-1 (198.19.0.2) failed: {pem}")
    assert "client-1 (198.19.0.2) failed" in text and "b3BlbnNzaC1rZXktdjEAAAAA" not in text


def test_a_command_declassifies_its_inventorys_public_parts(calls):
    from testbed_provider.protocol.redact import REDACTOR

    REDACTOR.register(Secret(BASE["inventory"]))
    asyncio.run(controller().create("urn", dict(BASE), preview=False))
    assert REDACTOR.scrub("server-1 at 198.19.0.1") == "server-1 at 198.19.0.1"
    assert "KEY-MATERIAL-1234" not in REDACTOR.scrub("key KEY-MATERIAL-1234")


def test_warm_up_loads_ansible_core_ahead_of_the_first_pattern():
    from testbed_provider.remote import patterns

    Command.warm_up()
    assert patterns._ansible is not None and hasattr(patterns._ansible, "InventoryManager")
