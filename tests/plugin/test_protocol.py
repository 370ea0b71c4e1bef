"""Provider over gRPC, no testbed needed: plugin start, schema, config, Check failures, preview."""

import json
import os
import socket
import subprocess
from concurrent import futures

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc

from testbed_provider.protocol import codec
from testbed_provider.protocol.codec import UNKNOWN, Secret

from ..helpers import PLUGIN, ROOT, failure_map, netns_list
from .engine import TOKEN, URN, PluginUnderTest, RecordingEngine


def test_plugin_info_and_schema_match_the_repository(plugin):
    schema = json.loads((ROOT / "schema.json").read_text())
    handshake = plugin.stub.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address=plugin.engine_address))
    assert handshake.accept_secrets
    assert plugin.stub.GetPluginInfo(empty_pb2.Empty()).version == schema["version"]
    served = json.loads(plugin.stub.GetSchema(provider_pb2.GetSchemaRequest()).schema)
    assert served == schema


def test_plugin_exits_on_sigint_after_cancel():
    p = PluginUnderTest()
    assert p.stop() in (0, -2, 130), p.stderr_text()


def test_config_unknown_backend_and_unknown_key_are_check_failures(plugin):
    response = plugin.stub.CheckConfig(
        provider_pb2.CheckRequest(
            urn="urn:pulumi:t::p::pulumi:providers:testbed::default",
            news=codec.encode({"backend": "slurm", "typo": "x", "version": "0.1.0"}),
        )
    )
    failures = failure_map(response)
    assert failures["backend"].startswith("unknown backend `slurm`")
    assert "typo" in failures and "version" not in failures


def test_configure_accepts_a_secret_backend_value(plugin):
    plugin.stub.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address=plugin.engine_address))
    response = plugin.stub.Configure(provider_pb2.ConfigureRequest(args=codec.encode({"backend": Secret("local")}), acceptSecrets=True))
    assert response.acceptSecrets and response.supportsPreview


def test_configure_rejects_an_unknown_backend_with_a_clear_error(plugin):
    with pytest.raises(grpc.RpcError) as err:
        plugin.stub.Configure(provider_pb2.ConfigureRequest(args=codec.encode({"backend": "slurm"})))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "unknown backend `slurm`" in err.value.details() and "Traceback" not in err.value.details()


@pytest.mark.parametrize(
    "news,prop",
    [
        ({"machines": [{"roles": ["a"], "count": 0}]}, "machines[0].count"),
        ({"machines": [{"roles": [], "count": 1}]}, "machines[0].roles"),
        ({"machines": [{"roles": ["a", "a"], "count": 1}]}, "machines[0].roles"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "roles": ["ghost"]}]}, "networks[0].roles"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "cidr": "198.18.0.0/33"}]}, "networks[0].cidr"),
        (
            {
                "machines": [{"roles": ["a"], "count": 1}],
                "networks": [{"id": "n", "cidr": "198.18.0.0/23"}, {"id": "m", "cidr": "198.18.1.0/24"}],
            },
            "networks[1].cidr",
        ),
        ({"machines": [{"roles": ["a"], "count": 1, "cluster": "paravance"}]}, "machines[0].cluster"),
        ({"machines": [{"roles": ["a"], "count": 1}], "networks": [{"id": "n", "cidr": "10.0.0.0/24"}]}, "networks[0].cidr"),
    ],
)
def test_bad_input_is_a_check_failure_naming_the_property(plugin, news, prop):
    plugin.handshake_and_configure()
    response = plugin.check(news)
    failures = failure_map(response)
    assert prop in failures, failures
    assert all("Traceback" not in r for r in failures.values())


def test_preview_create_has_no_side_effects_and_unknown_outputs(plugin):
    plugin.handshake_and_configure()
    inputs = plugin.check({"machines": [{"roles": ["server"], "count": 2}]}).inputs
    before = netns_list()
    response = plugin.stub.Create(provider_pb2.CreateRequest(urn=URN, type=TOKEN, properties=inputs, preview=True))
    assert response.id == ""
    outputs = codec.decode(response.properties)
    for key in ("hosts", "roles", "inventory", "sshPrivateKey"):
        assert outputs[key] is UNKNOWN, key
    assert outputs["machines"] == [{"roles": ["server"], "count": 2}]
    assert netns_list() == before


def test_unknown_resource_type_is_a_clear_error(plugin):
    plugin.handshake_and_configure()
    with pytest.raises(grpc.RpcError) as err:
        plugin.stub.Check(
            provider_pb2.CheckRequest(urn="urn:pulumi:t::p::testbed:index:Nope::x", type="testbed:index:Nope", news=codec.encode({}))
        )
    assert "unknown resource type `testbed:index:Nope`" in err.value.details()


def test_invoke_get_backend(plugin):
    plugin.handshake_and_configure()
    response = plugin.stub.Invoke(provider_pb2.InvokeRequest(tok="testbed:index:getBackend", args=codec.encode({})))
    result = codec.decode(getattr(response, "return"))
    assert (
        result["backend"] == "local"
        and result["available"] == ["chameleon", "g5k", "local", "static"]
        and isinstance(result["ready"], bool)
    )


def test_debug_mode_listens_on_a_fixed_port_and_attaches(tmp_path):
    """`PULUMI_DEBUG_PROVIDERS=testbed:<port>`: started by hand without an engine address,
    the plugin listens where it is told and learns the engine's address from Attach."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(PLUGIN)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "PULUMI_TESTBED_PROVIDER_PORT": str(port)}
    )
    try:
        assert proc.stdout.readline().decode().strip() == str(port)
        stub = provider_pb2_grpc.ResourceProviderStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        engine = RecordingEngine()
        server = grpc.server(futures.ThreadPoolExecutor(2))
        engine_pb2_grpc.add_EngineServicer_to_server(engine, server)
        engine_port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        stub.Attach(plugin_pb2.PluginAttach(address=f"127.0.0.1:{engine_port}"))
        assert stub.GetPluginInfo(empty_pb2.Empty()).version
        server.stop(0)
    finally:
        proc.terminate()
        proc.wait(10)


INVENTORY = {
    "hosts": [
        {"name": n, "address": f"198.19.0.{i}", "roles": [r], "networks": [], "user": "root", "port": 22}
        for i, (n, r) in enumerate([("server-1", "server"), ("client-1", "client"), ("client-2", "client")], 1)
    ],
    "groups": {"server": ["server-1"], "client": ["client-1", "client-2"]},
    "ssh": {
        "user": "root",
        "port": 22,
        "knownHosts": "",
        "privateKey": Secret("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
    },
}
COMMAND = "urn:pulumi:test::proj::testbed:index:Command::step"


def check_command(plugin, **news):
    plugin.handshake_and_configure()
    request = provider_pb2.CheckRequest(
        urn=COMMAND, type="testbed:index:Command", name="step", news=codec.encode({"inventory": INVENTORY, **news})
    )
    return failure_map(plugin.stub.Check(request))


@pytest.mark.parametrize(
    "news,prop,fragment",
    [
        ({"create": "true", "on": "database"}, "on", "database"),
        ({"create": "true", "on": "server:&client"}, "on", "match"),
        ({"create": "true", "on": ""}, "on", "pattern"),
        ({"create": ""}, "create", "non-empty"),
        ({"create": "true", "environment": {"1BAD": "x"}}, "environment.1BAD", "variable name"),
        ({"create": "true", "timeout": -1}, "timeout", "must be at least 0 (got -1)"),
        ({"create": "true", "runs": 2}, "runs", "unknown property"),
    ],
)
def test_command_bad_input_is_a_check_failure(plugin, news, prop, fragment):
    failures = check_command(plugin, **news)
    assert prop in failures, failures
    assert fragment in failures[prop]


def test_command_good_patterns_pass_and_default_to_all(plugin):
    for on in ("server", "client:!server", "client-2", "all", "server:client"):
        assert check_command(plugin, create="hostname", on=on) == {}, on
    plugin_inputs = codec.decode(
        plugin.stub.Check(
            provider_pb2.CheckRequest(
                urn=COMMAND, type="testbed:index:Command", name="step", news=codec.encode({"inventory": INVENTORY, "create": "x"})
            )
        ).inputs
    )
    assert plugin_inputs["on"] == "all"


def test_command_preview_runs_nothing_and_reports_unknowns(plugin):
    plugin.handshake_and_configure()
    inputs = codec.encode({"inventory": INVENTORY, "create": "touch /tmp/never", "on": "all"})
    response = plugin.stub.Create(provider_pb2.CreateRequest(urn=COMMAND, type="testbed:index:Command", properties=inputs, preview=True))
    outputs = codec.decode(response.properties)
    assert response.id == "" and outputs["results"] is UNKNOWN and outputs["stdout"] is UNKNOWN
