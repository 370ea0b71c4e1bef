"""Waiting until every host's sshd sends its banner, probed from inside the switch namespace.

One helper process (`ip netns exec <switch> python -c PROBER addr…`) polls all addresses
concurrently and prints one JSON line per host as soon as its `SSH-2.0` banner arrives, so
progress is reported as hosts become ready; no fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Awaitable, Callable, Optional

from ..common import deadlines, processes
from ..common.deadlines import Cancelled

PROBER = r"""
import asyncio, json, sys
async def probe(addr):
    while True:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(addr, 22), 2)
            try:
                line = await asyncio.wait_for(r.readline(), 5)
            finally:
                w.close()
            if line.startswith(b"SSH-2.0"):
                sys.stdout.write(json.dumps({"address": addr}) + "\n")
                sys.stdout.flush()
                return
        except (OSError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.03)
async def main():
    await asyncio.gather(*(probe(a) for a in sys.argv[1:]))
asyncio.run(main())
"""


async def wait_for_ssh(
    switch: str,
    addresses: list[str],
    timeout: float,
    cancelled: Optional[asyncio.Event],
    on_ready: Callable[[str], Awaitable[None]],
) -> list[str]:
    """Call `on_ready(address)` per host as its banner arrives; return the addresses that never
    answered within `timeout` (empty when all are ready). Raises Cancelled on Cancel."""
    pending = set(addresses)
    if not pending:
        return []
    if cancelled is not None and cancelled.is_set():
        raise Cancelled()
    argv = ["ip", "netns", "exec", switch, sys.executable, "-I", "-S", "-c", PROBER, *addresses]
    deadline = deadlines.after(timeout)
    async with processes.child(argv, env=processes.SAFE_ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        while pending and not deadlines.passed(deadline):
            try:
                line = await deadlines.wait_or_raise(proc.stdout.readline(), deadline, cancelled)
            except TimeoutError:
                break
            if not line:  # the prober died
                err = (await proc.stderr.read()).decode(errors="replace").strip()[-400:]
                raise RuntimeError(f"the SSH readiness prober in {switch} exited early: {err or 'no output'}")
            address = json.loads(line)["address"]
            if address in pending:
                pending.discard(address)
                await on_ready(address)
    return sorted(pending, key=addresses.index)
