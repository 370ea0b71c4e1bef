"""`testbed-g5k-emulator`: serve the emulator until SIGINT/SIGTERM.

The first line on stdout is the base URL (for python-grid5000's `uri`) once listening; logs go
to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .app import Emulator, parse_user


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="testbed-g5k-emulator", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--state", default=None, help="sqlite file holding jobs, deployments and vlans (default: memory only)")
    p.add_argument("--clock-speed", type=float, default=1.0, help="emulated seconds per real second (e.g. 3600)")
    p.add_argument("--deploy-seconds", type=float, default=180.0, help="emulated duration of a deployment")
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD[:PUBKEYFILE]",
        help="an API user (repeatable; default alice:x); PUBKEYFILE holds the keys root accepts on that user's undeployed nodes",
    )
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument(
        "--hosts",
        dest="hosts",
        action="store_true",
        default=None,
        help="running nodes are real local hosts (network namespaces with sshd; needs root)",
    )
    hosts.add_argument("--no-hosts", dest="hosts", action="store_false")
    p.add_argument("--run-dir", default=None, help="where the hosts' files live (default: a fresh temporary directory)")
    p.add_argument("--log-level", default="INFO")
    return p


async def serve(args: argparse.Namespace) -> None:
    users = [parse_user(u) for u in args.user] or None
    hosts = args.hosts if args.hosts is not None else os.geteuid() == 0
    emu = Emulator(
        state=args.state,
        clock_speed=args.clock_speed,
        users=users,
        hosts=hosts,
        bind=args.bind,
        run_dir=args.run_dir,
        deploy_seconds=args.deploy_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emu.start(args.port)
    try:
        sys.stdout.write(emu.url + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        logging.getLogger("g5k_emulator").info("stopping")
        await emu.stop()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args))
    except ValueError as err:
        sys.exit(f"testbed-g5k-emulator: {err}")


if __name__ == "__main__":
    main()
