"""A guard beside each local create: when the provider dies mid-create, it releases what that
create made.

A create whose provider never answered (SIGKILL, OOM, a crash) is in no stack's state, and
Pulumi then has no reason to start the provider again: a `pulumi destroy` of a stack whose state
holds only the provider resource deletes it without loading the plugin (measured, v3.259), so
neither Delete nor Configure is ever called. Hence this small process, started by the creator
in a session of its own (a signal to the plugin's process group spares it): the creator tells
it `done` on a pipe when the create returns, whatever the outcome (the state then records what
exists, or nothing is left). When the pipe closes without `done`, or the creator's pidfd says it
has exited, and the manifest still says `creating` (manifest.claim checks it), the guard
releases the reservation as an orphan sweep would. Nothing is ever killed by name.

    python -c 'from testbed_provider.testbeds.local.watchdog import main; main()'
    # stdin: one JSON line {runDir, runRoot, creatorPid}, then `done`
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import selectors
import sys
import time
from dataclasses import dataclass
from typing import Optional

from ...common import pids, processes

DONE = b"done\n"
LOG = "watchdog.log"  # in the run dir: what the watchdog saw, left for a look when a release fails
# (not `-m`: the package imports this module first, and runpy would run a second copy of it)
RUN = "from testbed_provider.testbeds.local.watchdog import main; main()"


@dataclass
class Guard:
    """The creator's end: `done()` once the create has returned (it reaps the watchdog)."""

    proc: Optional[asyncio.subprocess.Process]
    pipe: int

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    async def done(self) -> None:
        if self.pipe < 0:
            return
        try:
            os.write(self.pipe, DONE)
        except OSError:
            pass
        os.close(self.pipe)
        if self.proc is not None:  # our own child: stopped through its handle if need be, never by name
            await processes.reap(self.proc, grace=10)


async def start(run_dir: str, run_root: str) -> Guard:
    """Start the watchdog of the create recorded in `run_dir` (by this process). Without one
    (it could not start) the create goes on: Configure and `testbed gc` still find a leftover."""
    read_end, write_end = os.pipe()  # both non-inheritable: no other child of ours holds the write end
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    env = {**processes.SAFE_ENV, "PYTHONPATH": package_parent}
    log = os.open(os.path.join(run_dir, LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        proc = await processes.start([sys.executable, "-c", RUN], env=env, stdin=read_end, stderr=log, cwd="/")
    except OSError:
        os.close(write_end)
        return Guard(None, -1)
    finally:
        os.close(read_end)
        os.close(log)
    me = os.getpid()
    header = {"runDir": run_dir, "runRoot": run_root, "creatorPid": me, "creatorStartTime": pids.start_time(me)}
    os.write(write_end, (json.dumps(header) + "\n").encode())
    return Guard(proc, write_end)


def _wait_for_the_creator(creator: int, started: Optional[int]) -> bool:
    """Block until the create is done (True) or its creator is gone (False)."""
    try:
        pidfd: Optional[int] = os.pidfd_open(creator)
    except OSError:  # already gone
        pidfd = None
    if pidfd is not None and pids.start_time(creator) != started:  # gone, and its pid reused since
        os.close(pidfd)
        pidfd = None
    received = b""
    with selectors.DefaultSelector() as sel:
        sel.register(0, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        while True:
            ready = {key.fd for key, _ in sel.select()}
            if 0 in ready:
                chunk = os.read(0, 64)
                received += chunk
                if DONE in received:
                    return True
                if not chunk:  # every write end closed: the creator is exiting (its files close first)...
                    if pidfd is not None:
                        select.select([pidfd], [], [])  # ...and gone once its pidfd says so (else it still looks alive)
                    return False
            if pidfd is not None and pidfd in ready:
                # it exited; a `done` it wrote just before is still in the pipe
                os.set_blocking(0, False)
                try:
                    received += os.read(0, 64)
                except BlockingIOError:
                    pass
                return DONE in received


def _header() -> dict:
    """The first line of stdin, read unbuffered: what follows it is for _wait_for_the_creator."""
    line = b""
    while not line.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            return {}
        line += byte
    return json.loads(line)


def _say(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} watchdog {os.getpid()}: {message}\n")
    sys.stderr.flush()


def main() -> None:
    header = _header()
    if not header:
        _say("no header: the creator died before it was written")
        return
    if _wait_for_the_creator(int(header["creatorPid"]), header.get("creatorStartTime")):
        return
    _say(f"creator {header['creatorPid']} gone before its create returned")
    from .testbed import LocalTestbed

    async def say(message: str) -> None:
        _say(message)

    released = asyncio.run(LocalTestbed(run_root=header["runRoot"]).release_leftover(header["runDir"], say))
    _say("released" if released else "nothing to release (no longer an interrupted create, or claimed by another)")
