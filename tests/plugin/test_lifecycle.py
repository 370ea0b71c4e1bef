"""The engine's full call sequence against the real plugin and the local testbed (needs root).

Check → Create(preview) → Create → Read → Check+Diff → Update(preview) → Update → Read → Delete,
plus partial failure and secrets; every host must answer SSH, and nothing may be left behind.
"""

import os
import subprocess
import tempfile

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2

from testbed_provider.protocol import codec
from testbed_provider.protocol.codec import UNKNOWN, Secret

from ..helpers import IS_ROOT, failure_map, namespaces_of
from .engine import TOKEN, URN, PluginUnderTest, init_failure

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")

SPEC = {
    "machines": [{"roles": ["server"], "count": 1}, {"roles": ["client"], "count": 1}],
    "networks": [{"id": "experiment", "roles": ["server", "client"]}],
}


def ssh(outputs: dict, host: str, command: str) -> str:
    """Reach a host from the recorded outputs alone (as a later Ansible step will)."""
    inventory = codec.reveal(outputs["inventory"])
    entry = next(h for h in inventory["hosts"] if h["name"] == host)
    with tempfile.TemporaryDirectory() as tmp:
        key, known = os.path.join(tmp, "id"), os.path.join(tmp, "known_hosts")
        with open(key, "w") as f:
            f.write(inventory["ssh"]["privateKey"])
        os.chmod(key, 0o600)
        with open(known, "w") as f:
            f.write(inventory["ssh"]["knownHosts"])
        argv = [
            "ssh",
            "-i",
            key,
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ProxyCommand={inventory['ssh']['proxyCommand']}",
            "-p",
            str(entry["port"]),
            f"{entry['user']}@{entry['address']}",
            command,
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_full_lifecycle(plugin):
    plugin.handshake_and_configure()
    checked = plugin.check(SPEC)
    assert not checked.failures
    inputs = checked.inputs

    created = plugin.stub.Create(provider_pb2.CreateRequest(urn=URN, type=TOKEN, properties=inputs, timeout=300))
    outputs = codec.decode(created.properties)
    try:
        assert created.id
        assert isinstance(outputs["sshPrivateKey"], Secret), "the private key must be a secret output"
        assert isinstance(outputs["inventory"]["ssh"]["privateKey"], Secret)
        assert outputs["roles"] == {"server": ["server-1"], "client": ["client-1"]}
        for host in outputs["hosts"]:
            assert ssh(outputs, host["name"], "hostname") == host["name"]
            assert [n["id"] for n in host["networks"]] == ["experiment"]
        assert len(namespaces_of(created.id)) == 3  # switch + 2 hosts

        # progress reached the engine log, tied to the resource, and never carried the key
        messages = plugin.engine.messages()
        assert any("SSH" in m or "ready" in m for m in messages), messages
        key = codec.reveal(outputs["sshPrivateKey"])
        body = "".join(line for line in key.splitlines() if "PRIVATE KEY" not in line)
        assert body[:40] not in "\n".join(messages) + plugin.stderr_text()
        assert all(log.urn == URN for log in plugin.engine.logs if "host" in log.message)

        read = plugin.stub.Read(provider_pb2.ReadRequest(id=created.id, urn=URN, type=TOKEN, properties=created.properties, inputs=inputs))
        assert read.id == created.id
        assert len(codec.decode(read.properties)["hosts"]) == 2

        # scale the client group up: an in-place update
        news = {**SPEC, "machines": [{"roles": ["server"], "count": 1}, {"roles": ["client"], "count": 2}]}
        rechecked = plugin.check(news, olds=codec.decode(inputs))
        diff = plugin.stub.Diff(
            provider_pb2.DiffRequest(id=created.id, urn=URN, type=TOKEN, olds=created.properties, old_inputs=inputs, news=rechecked.inputs)
        )
        assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and not diff.replaces
        assert "machines[1].count" in diff.detailedDiff

        preview = plugin.stub.Update(
            provider_pb2.UpdateRequest(
                id=created.id, urn=URN, type=TOKEN, olds=created.properties, news=rechecked.inputs, old_inputs=inputs, preview=True
            )
        )
        assert codec.decode(preview.properties)["hosts"] is UNKNOWN
        assert len(namespaces_of(created.id)) == 3, "preview must not add hosts"

        updated = plugin.stub.Update(
            provider_pb2.UpdateRequest(
                id=created.id, urn=URN, type=TOKEN, olds=created.properties, news=rechecked.inputs, old_inputs=inputs, timeout=300
            )
        )
        outputs = codec.decode(updated.properties)
        assert outputs["roles"]["client"] == ["client-1", "client-2"]
        assert ssh(outputs, "client-2", "hostname") == "client-2"

        # a changed network is a replacement, deleting first (the same nodes cannot be held twice)
        diff = plugin.stub.Diff(
            provider_pb2.DiffRequest(
                id=created.id,
                urn=URN,
                type=TOKEN,
                olds=updated.properties,
                old_inputs=rechecked.inputs,
                news=plugin.check({**news, "networks": [{"id": "other"}]}, olds=codec.decode(rechecked.inputs)).inputs,
            )
        )
        assert list(diff.replaces) == ["networks"] and diff.deleteBeforeReplace
    finally:
        plugin.stub.Delete(provider_pb2.DeleteRequest(id=created.id, urn=URN, type=TOKEN, properties=codec.encode(outputs)))
    assert namespaces_of(created.id) == set()
    # Delete of something already gone succeeds; Read reports it gone
    plugin.stub.Delete(provider_pb2.DeleteRequest(id=created.id, urn=URN, type=TOKEN, properties=codec.encode(outputs)))
    gone = plugin.stub.Read(provider_pb2.ReadRequest(id=created.id, urn=URN, type=TOKEN, properties=codec.encode(outputs), inputs=inputs))
    assert gone.id == ""


def test_partial_failure_records_what_exists():
    """Hosts whose SSH never comes up in time: Create fails but hands the engine the partial state."""
    plugin = PluginUnderTest(env={"PULUMI_TESTBED_LOCAL_READY_TIMEOUT": "0.01"})
    try:
        plugin.handshake_and_configure()
        inputs = plugin.check({"machines": [{"roles": ["server"], "count": 2}]}).inputs
        with pytest.raises(grpc.RpcError) as err:
            plugin.stub.Create(provider_pb2.CreateRequest(urn=URN, type=TOKEN, properties=inputs, timeout=60))
        detail = init_failure(err.value)
        assert detail is not None, err.value.details()
        assert detail.id and detail.reasons and "SSH" in detail.reasons[0]
        partial = codec.decode(detail.properties)
        assert isinstance(partial["sshPrivateKey"], Secret)
        assert namespaces_of(detail.id), "what was created still exists and is recorded"
        # destroy from the recorded partial state releases everything
        plugin.stub.Delete(provider_pb2.DeleteRequest(id=detail.id, urn=URN, type=TOKEN, properties=detail.properties))
        assert namespaces_of(detail.id) == set()
    finally:
        plugin.stop()


def test_without_privileges_the_config_check_says_so():
    """Root without CAP_NET_ADMIN/CAP_SYS_ADMIN (as in an unprivileged container): a clear message."""
    plugin = PluginUnderTest(argv_prefix=("setpriv", "--bounding-set=-net_admin,-sys_admin"))
    try:
        response = plugin.stub.CheckConfig(
            provider_pb2.CheckRequest(urn="urn:pulumi:t::p::pulumi:providers:testbed::default", news=codec.encode({"backend": "local"}))
        )
        failures = failure_map(response)
        assert "CAP_NET_ADMIN and CAP_SYS_ADMIN" in failures.get("backend", ""), failures
        assert "Traceback" not in failures["backend"]
    finally:
        plugin.stop()
