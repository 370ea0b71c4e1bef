"""Messages to the Pulumi CLI through the engine's Log service.

A resource plugin's stdout/stderr are hidden by the engine, so progress and warnings must go
through Engine.Log. Ephemeral messages update the resource's status column in `pulumi up`;
persistent ones land under "Diagnostics". Every text is scrubbed of secrets first, and a broken
engine connection never fails an operation.
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

from .redact import REDACTOR

_log = logging.getLogger("testbed_provider")

DEBUG, INFO, WARNING, ERROR = (
    engine_pb2.DEBUG,
    engine_pb2.INFO,
    engine_pb2.WARNING,
    engine_pb2.ERROR,
)


class EngineLog:
    def __init__(self, address: Optional[str] = None) -> None:
        self._stub: Optional[engine_pb2_grpc.EngineStub] = None
        self._channel: Optional[grpc.aio.Channel] = None
        if address:
            self.connect(address)

    def connect(self, address: str) -> None:
        """(Re)connect, e.g. when Handshake or Attach tells us the engine's address."""
        if self._channel is not None:
            return
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = engine_pb2_grpc.EngineStub(self._channel)

    async def log(self, severity: int, message: str, urn: str = "", ephemeral: bool = False) -> None:
        text = REDACTOR.scrub(message)
        print(f"[{engine_pb2.LogSeverity.Name(severity)}] {urn} {text}", file=sys.stderr, flush=True)
        if self._stub is None:
            return
        try:
            await self._stub.Log(
                engine_pb2.LogRequest(severity=engine_pb2.LogSeverity.ValueType(severity), message=text, urn=urn, ephemeral=ephemeral),
                timeout=10,
            )
        except grpc.RpcError as err:  # the engine may be gone (Ctrl-C): progress is best effort
            _log.debug("engine log failed: %s", err)

    def status(self, urn: str):
        """A progress callback for one resource: each call replaces its status line in the CLI."""

        async def report(message: str) -> None:
            await self.log(INFO, message, urn=urn, ephemeral=True)

        return report

    async def info(self, urn: str, message: str) -> None:
        """A line kept under the resource's Diagnostics (the outcome of an operation)."""
        await self.log(INFO, message, urn=urn, ephemeral=False)

    async def warn(self, urn: str, message: str) -> None:
        """A warning kept under the resource's Diagnostics (something left to the user)."""
        await self.log(WARNING, message, urn=urn, ephemeral=False)
