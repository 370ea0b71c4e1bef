"""`pulumi-resource-testbed`: the plugin executable the Pulumi engine starts.

The engine passes its own address as the last argument and reads our port from the first line
of stdout; nothing else may be printed there. Without an engine address (debugging with
`PULUMI_DEBUG_PROVIDERS=testbed:<port>`), it listens on $PULUMI_TESTBED_PROVIDER_PORT (default:
any free port) and learns the engine's address from Attach.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Optional, TextIO

MAX_MESSAGE = 400 * 1024 * 1024  # the engine's and SDK's own gRPC limit


def _engine_address(argv: list[str]) -> Optional[str]:
    args = [a for a in argv[1:] if not a.startswith("-")]
    # `--tracing <endpoint>` takes a value; the engine address is always last.
    return args[-1] if args else None


async def _watch_parent(stop: asyncio.Event) -> None:
    """Exit when the engine is gone (a killed CLI would otherwise leave us running)."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(2)
        if os.getppid() != parent:
            stop.set()


def _stopper(*events: asyncio.Event):
    """A signal handler setting every event (Cancel for in-flight calls, then stop)."""

    def handler() -> None:
        for event in events:
            event.set()

    return handler


async def serve(engine: Optional[str], port_out: TextIO) -> None:
    import grpc
    from pulumi.runtime.proto import provider_pb2_grpc

    from .protocol.server import TestbedProvider

    provider = TestbedProvider(engine)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)])
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    wanted = 0 if engine else int(os.environ.get("PULUMI_TESTBED_PROVIDER_PORT", "0"))
    port = server.add_insecure_port(f"127.0.0.1:{wanted}")
    await server.start()
    port_out.write(f"{port}\n")
    port_out.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # The engine sends SIGINT to end every command: stop waits, let in-flight calls finish.
        loop.add_signal_handler(sig, _stopper(provider.ctx.cancelled, stop))
    watcher = asyncio.create_task(_watch_parent(stop)) if engine else None
    await stop.wait()
    if watcher:
        watcher.cancel()
    await server.stop(grace=5)


def main() -> None:
    port_out = os.fdopen(os.dup(1), "w")  # the real stdout, for the port line only
    os.dup2(2, 1)  # stray prints from libraries go to stderr, never before the port
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(_engine_address(sys.argv), port_out))
    finally:
        _record_usage(os.environ.get("PULUMI_TESTBED_RUSAGE_FILE"))


def _record_usage(path: Optional[str]) -> None:
    """For benchmarks: append this process's CPU time (and its reaped children's) as a JSON line."""
    if not path:
        return
    import json
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    line = {
        "pid": os.getpid(),
        "cpuS": me.ru_utime + me.ru_stime,
        "childrenCpuS": children.ru_utime + children.ru_stime,
        "maxRssKiB": me.ru_maxrss,
    }
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
