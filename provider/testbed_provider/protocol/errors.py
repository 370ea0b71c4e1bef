"""How resource failures reach the engine.

- `ResourceFailure`: the operation failed cleanly (nothing was created, or nothing changed).
  Sent with a non-UNKNOWN status code so the engine does not flag the state as corrupt.
- `PartialFailure`: something exists although the operation failed. Sent with the
  ErrorResourceInitFailed detail so the engine records the resource (id + outputs) and nothing
  is orphaned; the next `pulumi up` retries with an Update, `pulumi destroy` releases it.
"""

from __future__ import annotations

from typing import Any, Optional

import grpc
from pulumi.runtime.proto import provider_pb2, status_pb2

from . import codec
from .redact import REDACTOR


class ResourceFailure(Exception):
    """A clean, user-facing failure: the message says what went wrong and what to do."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PartialFailure(Exception):
    def __init__(self, message: str, resource_id: str, outputs: dict[str, Any], inputs: Optional[dict[str, Any]] = None):
        super().__init__(message)
        self.resource_id = resource_id
        self.outputs = outputs
        self.inputs = inputs


async def abort_partial(context: grpc.aio.ServicerContext, failure: PartialFailure) -> None:
    """Fail the call while handing the engine the state of what exists."""
    message = REDACTOR.scrub(str(failure))
    detail = provider_pb2.ErrorResourceInitFailed(
        id=failure.resource_id,
        properties=codec.encode(failure.outputs),
        reasons=[message],
    )
    if failure.inputs is not None:
        detail.inputs.CopyFrom(codec.encode(failure.inputs))
    status = status_pb2.Status(code=grpc.StatusCode.UNKNOWN.value[0], message=message)
    status.details.add().Pack(detail)
    await context.abort(
        grpc.StatusCode.UNKNOWN,
        message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )
