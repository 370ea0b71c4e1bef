"""`testbed-openstack-emulator`: serve the Chameleon (OpenStack + Blazar) emulator until
SIGINT/SIGTERM.

The first line on stdout is Keystone's URL (`OS_AUTH_URL`) once listening; logs go to stderr.
`GET /_emulator/ssh` says how to reach the servers (the ProxyCommand) and the credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from .app import Emulator
from .cloud import Config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="testbed-openstack-emulator", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--state", default=None, help="sqlite file holding leases, servers, keypairs… (default: memory only)")
    p.add_argument("--region", default="CHI@UC", help="the region (Chameleon site) the catalog names")
    p.add_argument("--clock-speed", type=float, default=1.0, help="emulated seconds per real second")
    p.add_argument("--boot-seconds", type=float, default=600.0, help="emulated time a bare-metal server takes to boot")
    p.add_argument("--lease-start-seconds", type=float, default=60.0, help="emulated time a lease spends STARTING")
    hosts = p.add_mutually_exclusive_group()
    hosts.add_argument("--hosts", dest="hosts", action="store_true", default=None, help="servers are real local hosts (needs root)")
    hosts.add_argument("--no-hosts", dest="hosts", action="store_false")
    p.add_argument("--run-dir", default=None, help="where the hosts' files live (default: a fresh temporary directory)")
    p.add_argument("--log-level", default="INFO")
    return p


async def serve(args: argparse.Namespace) -> None:
    config = Config(region=args.region, boot_seconds=args.boot_seconds, lease_start_seconds=args.lease_start_seconds)
    hosts = args.hosts if args.hosts is not None else os.geteuid() == 0
    emu = Emulator(config=config, state=args.state, clock_speed=args.clock_speed, bind=args.bind, hosts=hosts, run_dir=args.run_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emu.start(args.port)
    try:
        sys.stdout.write(f"{emu.url}/v3\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        logging.getLogger("openstack_emulator").info("stopping")
        await emu.stop()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args))
    except ValueError as err:
        sys.exit(f"testbed-openstack-emulator: {err}")


if __name__ == "__main__":
    main()
