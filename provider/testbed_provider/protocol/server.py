"""The ResourceProvider gRPC service the Pulumi engine talks to.

Only protocol here: decode requests, dispatch to the controller registered for the resource
token, encode responses, and turn failures into what the engine expects (Check failures,
clean errors, partial state). Resource behaviour lives in `testbed_provider.resources`.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Any, Awaitable, Callable, Optional

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from .. import __version__
from ..common.results import CheckFailure
from ..config import ProviderConfig, parse_config
from ..functions import FUNCTIONS
from ..resources import CONTROLLERS
from ..resources.base import ProviderContext, ResourceController
from ..schema import schema_text
from ..testbeds import make_testbed
from . import codec
from .engine_log import EngineLog
from .errors import PartialFailure, ResourceFailure, abort_partial
from .redact import REDACTOR

_log = logging.getLogger("testbed_provider")


def _type_of(urn: str, type_: str = "") -> str:
    """The resource token: from the request's `type`, else the URN (`urn:pulumi:stack::proj::type::name`)."""
    if type_:
        return type_
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


def _decode(controller: ResourceController, struct) -> dict[str, Any]:
    props = codec.decode(struct)
    controller.declassify(props)
    return props


def _failures(failures: list[CheckFailure]) -> list[provider_pb2.CheckFailure]:
    """Check failures as the engine prints them best: `machines[0].count: must be at least 1`.

    The engine formats a failure that names a property as `property P value V has a problem`,
    looking V up among the top-level inputs only: a nested path prints `{<nil>}` and a secret
    prints a Go struct. So the path goes into the reason and the property stays empty."""
    return [provider_pb2.CheckFailure(reason=REDACTOR.scrub(f"{f.property}: {f.reason}" if f.property else f.reason)) for f in failures]


def _invoke_failures(failures: list[CheckFailure]) -> list[provider_pb2.CheckFailure]:
    """An Invoke's failures: the SDKs print them as `reason (property)`, so both are kept."""
    return [provider_pb2.CheckFailure(property=f.property, reason=REDACTOR.scrub(f.reason)) for f in failures]


class TestbedProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, engine_address: Optional[str] = None) -> None:
        self.log = EngineLog(engine_address)
        self.ctx = ProviderContext(config=ProviderConfig(), log=self.log)
        self._controllers: dict[str, ResourceController] = {}
        self._warming: Optional[list[asyncio.Future]] = None

    # ---- helpers ---------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Run every resource type's warm-up in a thread, once (see ResourceController.warm_up)."""
        if self._warming is None:
            loop = asyncio.get_running_loop()
            self._warming = [loop.run_in_executor(None, c.warm_up) for c in CONTROLLERS.values()]

    def _controller(self, token: str) -> ResourceController:
        if token not in CONTROLLERS:
            raise ResourceFailure(f"unknown resource type `{token}` for the testbed provider {__version__}")
        if token not in self._controllers:
            self._controllers[token] = CONTROLLERS[token](self.ctx)
        return self._controllers[token]

    async def _guard(self, context: grpc.aio.ServicerContext, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one RPC body, mapping failures to gRPC statuses without leaking secrets or tracebacks."""
        try:
            return await call()
        except PartialFailure as failure:
            await abort_partial(context, failure)
        except ResourceFailure as failure:
            await context.abort(failure.code, REDACTOR.scrub(str(failure)))
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # a bug: keep the traceback in the plugin's log, not the user's screen
            _log.error("%s failed:\n%s", what, REDACTOR.scrub(traceback.format_exc()))
            await context.abort(
                grpc.StatusCode.INTERNAL,
                REDACTOR.scrub(f"internal error in the testbed provider during {what}: {type(err).__name__}: {err}"),
            )

    # ---- plugin lifecycle ------------------------------------------------------------------

    async def Handshake(self, request, context):
        if request.engine_address:
            self.log.connect(request.engine_address)
        return provider_pb2.ProviderHandshakeResponse(
            accept_secrets=True, accept_resources=False, accept_outputs=False, supports_autonaming_configuration=False
        )

    async def Attach(self, request: plugin_pb2.PluginAttach, context):
        self.log.connect(request.address)
        return empty_pb2.Empty()

    async def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=__version__)

    async def GetSchema(self, request, context):
        return provider_pb2.GetSchemaResponse(schema=schema_text())

    async def Cancel(self, request, context):
        """Advisory: stop waiting loops (they return partial state); never release anything here."""
        self.ctx.cancelled.set()
        return empty_pb2.Empty()

    # ---- provider configuration -------------------------------------------------------------

    async def CheckConfig(self, request, context):
        async def body():
            config, failures = parse_config(codec.decode(request.news))
            if not failures:
                testbed = make_testbed(config.backend, self.ctx.cancelled, config)
                reason = testbed.preflight()
                if reason:
                    failures.append(CheckFailure("backend", reason))
                else:
                    failures += await testbed.check_access()
            return provider_pb2.CheckResponse(inputs=request.news, failures=_failures(failures))

        return await self._guard(context, "provider configuration check", body)

    async def DiffConfig(self, request, context):
        old = parse_config(codec.decode(request.old_inputs or request.olds))[0]
        new = parse_config(codec.decode(request.news))[0]
        if old.backend == new.backend:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        # Resources of the old testbed live there: switching testbeds means new reservations.
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME,
            replaces=["backend"],
            diffs=["backend"],
            detailedDiff={"backend": provider_pb2.PropertyDiff(kind=provider_pb2.PropertyDiff.UPDATE_REPLACE)},
            hasDetailedDiff=True,
        )

    async def Configure(self, request, context):
        async def body():
            raw = codec.decode(request.args) if request.HasField("args") else dict(request.variables)
            raw = {k.removeprefix("testbed:config:"): v for k, v in raw.items()}
            config, failures = parse_config(raw)
            if failures:
                raise ResourceFailure("; ".join(f"testbed:{f.property}: {f.reason}" for f in failures))
            self.ctx.config = config
            self._warm_up()
            await self._sweep_interrupted(request.urn if request.HasField("urn") else "")
            return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=False)

        return await self._guard(context, "configure", body)

    async def _sweep_interrupted(self, provider_urn: str) -> None:
        """Release what this stack's interrupted creates left (Testbed.sweep_interrupted).
        Configure is the one call every deployment that loads the provider makes: up, preview,
        and a refresh or destroy whose state holds any resource of ours, even when the one
        interrupted is not (a state holding none never loads us: the create's own watchdog
        covers that). Its URN, `urn:pulumi:<stack>::<project>::…`, names the stack. Never
        fails Configure: a leftover is reported and left for `testbed gc`."""
        from .engine_log import INFO, WARNING

        parts = provider_urn.split("::")
        if len(parts) < 3 or not parts[0].startswith("urn:pulumi:"):
            return
        stack = f"{parts[0]}::{parts[1]}::"

        async def progress(message: str) -> None:
            await self.log.log(INFO, message)

        try:
            await make_testbed(self.ctx.config.backend, self.ctx.cancelled, self.ctx.config).sweep_interrupted(stack, progress)
        except Exception as err:  # noqa: BLE001 - never fail Configure because of a leftover
            _log.warning("sweeping interrupted creates failed:\n%s", REDACTOR.scrub(traceback.format_exc()))
            await self.log.log(
                WARNING, f"could not release what interrupted creates left: {type(err).__name__}: {err} (`testbed gc` lists it)"
            )

    # ---- resources --------------------------------------------------------------------------

    async def Check(self, request, context):
        async def body():
            controller = self._controller(_type_of(request.urn, request.type))
            result = await controller.check(
                request.name or request.urn.split("::")[-1],
                _decode(controller, request.olds),
                _decode(controller, request.news),
                urn=request.urn,
            )
            return provider_pb2.CheckResponse(inputs=codec.encode(result.inputs), failures=_failures(result.failures))

        return await self._guard(context, "check", body)

    async def Diff(self, request, context):
        async def body():
            controller = self._controller(_type_of(request.urn, request.type))
            result = controller.diff(
                _decode(controller, request.olds), _decode(controller, request.old_inputs), _decode(controller, request.news)
            )
            detailed = {path: provider_pb2.PropertyDiff(kind=int(kind), inputDiff=True) for path, kind in result.detailed.items()}
            return provider_pb2.DiffResponse(
                changes=provider_pb2.DiffResponse.DIFF_SOME if detailed else provider_pb2.DiffResponse.DIFF_NONE,
                replaces=result.replaces,
                diffs=result.changed_keys,
                detailedDiff=detailed,
                hasDetailedDiff=True,
                deleteBeforeReplace=result.delete_before_replace and bool(result.replaces),
            )

        return await self._guard(context, "diff", body)

    async def Create(self, request, context):
        async def body():
            controller = self._controller(_type_of(request.urn, request.type))
            rid, outputs = await controller.create(request.urn, _decode(controller, request.properties), request.preview, request.timeout)
            return provider_pb2.CreateResponse(id=rid, properties=codec.encode(outputs))

        return await self._guard(context, "create", body)

    async def Read(self, request, context):
        async def body():
            controller = self._controller(_type_of(request.urn, request.type))
            result = await controller.read(
                request.id, request.urn, _decode(controller, request.properties), _decode(controller, request.inputs)
            )
            if result is None:
                return provider_pb2.ReadResponse(id="")
            response = provider_pb2.ReadResponse(id=result.id, properties=codec.encode(result.outputs))
            if result.inputs is not None:
                response.inputs.CopyFrom(codec.encode(result.inputs))
            return response

        return await self._guard(context, "read", body)

    async def Update(self, request, context):
        async def body():
            controller = self._controller(_type_of(request.urn, request.type))
            outputs = await controller.update(
                request.id,
                request.urn,
                _decode(controller, request.olds),
                _decode(controller, request.old_inputs),
                _decode(controller, request.news),
                request.preview,
                request.timeout,
            )
            return provider_pb2.UpdateResponse(properties=codec.encode(outputs))

        return await self._guard(context, "update", body)

    async def Delete(self, request, context):
        async def body():
            controller = self._controller(_type_of(request.urn, request.type))
            await controller.delete(request.id, request.urn, _decode(controller, request.properties), request.timeout)
            return empty_pb2.Empty()

        return await self._guard(context, "delete", body)

    # ---- functions --------------------------------------------------------------------------

    async def Invoke(self, request, context):
        async def body():
            function = FUNCTIONS.get(request.tok)
            if function is None:
                raise ResourceFailure(f"unknown function `{request.tok}` (known: {', '.join(sorted(FUNCTIONS))})")
            result, failures = await function(self.ctx, codec.decode(request.args))
            return provider_pb2.InvokeResponse(
                failures=_invoke_failures(failures),
                **({"return": codec.encode(result)} if result is not None else {}),
            )

        return await self._guard(context, "invoke", body)
