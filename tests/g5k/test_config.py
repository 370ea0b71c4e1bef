"""Provider configuration for g5k over gRPC: CheckConfig failures name the key, getBackend."""

from __future__ import annotations

from pulumi.runtime.proto import provider_pb2

from testbed_provider.protocol import codec

from ..helpers import failure_map

PROVIDER = "urn:pulumi:test::proj::pulumi:providers:testbed::default"


def check_config(plugin, config: dict) -> dict[str, str]:
    checked = plugin.stub.CheckConfig(provider_pb2.CheckRequest(urn=PROVIDER, news=codec.encode(config)))
    return failure_map(checked)


def test_config_failures_name_the_key(plugin, tmp_path):
    broken = tmp_path / "g5k.yaml"
    broken.write_text("uri: [oops\n")
    assert set(check_config(plugin, {"backend": "g5k", "g5kConfigFile": str(broken)})) == {"g5kConfigFile"}
    missing = check_config(plugin, {"backend": "g5k", "g5kConfigFile": str(tmp_path / "nope.yaml")})
    assert "does not exist" in missing["g5kConfigFile"]
    assert set(check_config(plugin, {"backend": "g5k", "g5kUri": "ftp://x", "g5kColour": "red"})) == {"g5kUri", "g5kColour"}
    # an unreachable API is not a configuration error (previews work offline)
    assert (
        check_config(
            plugin, {"backend": "g5k", "g5kUri": "http://127.0.0.1:9/stable", "g5kUsername": "alice", "g5kPassword": "never-shown-1"}
        )
        == {}
    )


def test_get_backend_reports_g5k(plugin, emulator):
    plugin.configure_g5k(emulator, g5kSite="lyon")
    response = plugin.stub.Invoke(provider_pb2.InvokeRequest(tok="testbed:index:getBackend", args=codec.encode({})))
    result = codec.decode(getattr(response, "return"))
    assert result["backend"] == "g5k" and result["ready"] is True and result["available"] == ["chameleon", "g5k", "local", "static"]
