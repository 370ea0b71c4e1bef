"""A test acting as the Pulumi engine: starts the real plugin process and talks gRPC to it.

Mirrors pulumi-go-provider's integration harness: a fake Engine service records every Log
call, the plugin is started with that engine's address as its last argument, and the port is
read from the plugin's first stdout line, as the real engine does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
from concurrent import futures
from typing import Any, Optional

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, provider_pb2, provider_pb2_grpc, status_pb2

from testbed_provider.protocol import codec

from ..helpers import PLUGIN

URN = "urn:pulumi:test::proj::testbed:index:Reservation::nodes"
TOKEN = "testbed:index:Reservation"


class RecordingEngine(engine_pb2_grpc.EngineServicer):
    def __init__(self) -> None:
        self.logs: list[engine_pb2.LogRequest] = []
        self._lock = threading.Lock()

    def Log(self, request, context):
        with self._lock:
            self.logs.append(request)
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):
        return engine_pb2.GetRootResourceResponse()

    def SetRootResource(self, request, context):
        return engine_pb2.SetRootResourceResponse()

    def messages(self) -> list[str]:
        with self._lock:
            return [log.message for log in self.logs]


class PluginUnderTest:
    """The real `pulumi-resource-testbed` process, driven like the engine drives it."""

    def __init__(
        self, env: Optional[dict[str, str]] = None, argv_prefix: tuple[str, ...] = (), executable: "str | os.PathLike[str]" = PLUGIN
    ) -> None:
        self.engine = RecordingEngine()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        engine_pb2_grpc.add_EngineServicer_to_server(self.engine, self._server)
        self.engine_address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*argv_prefix, str(executable), self.engine_address],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # like the engine: its own process group
        )
        port = self.proc.stdout.readline().decode().strip()
        if not port.isdigit():
            raise RuntimeError(f"plugin wrote {port!r} instead of its port; stderr: {self.stderr_text()}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def handshake_and_configure(self, config: Optional[dict[str, Any]] = None) -> None:
        self.stub.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address=self.engine_address))
        news = codec.encode(config or {"backend": "local"})
        checked = self.stub.CheckConfig(
            provider_pb2.CheckRequest(urn="urn:pulumi:test::proj::pulumi:providers:testbed::default", news=news)
        )
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        self.stub.Configure(provider_pb2.ConfigureRequest(args=checked.inputs, acceptSecrets=True, acceptResources=True))

    def check(self, news: dict[str, Any], olds: Optional[dict[str, Any]] = None):
        return self.stub.Check(
            provider_pb2.CheckRequest(urn=URN, type=TOKEN, name="nodes", olds=codec.encode(olds or {}), news=codec.encode(news))
        )

    def stop(self) -> int:
        """End the plugin the way the engine ends every command: Cancel, then SIGINT to the group."""
        try:
            self.stub.Cancel(empty_pb2.Empty(), timeout=5)
        except grpc.RpcError:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        self.channel.close()
        self._server.stop(0)
        return code


def init_failure(err: grpc.RpcError) -> Optional[provider_pb2.ErrorResourceInitFailed]:
    """The partial-state detail of a failed Create/Update, as the engine parses it."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                failed = provider_pb2.ErrorResourceInitFailed()
                if detail.Unpack(failed):
                    return failed
    return None
