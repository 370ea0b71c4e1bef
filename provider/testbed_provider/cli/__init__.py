"""`testbed`: a live stack's hosts for Ansible, ad-hoc commands and shells, on top of Pulumi.

    testbed inventory [--format yaml|json|ini] [--plugin-file F.testbed.yml]
    testbed run PATTERN -- COMMAND
    testbed ssh HOST [-- COMMAND]
    testbed gc [--yes]
    testbed tunnel HOST:PORT [LOCAL_PORT]
    testbed metrics --query Q [--from T] [--to T] [--backup DIR | --collector HOST:PORT]
    testbed plot --view throughput|cpu|memory -o FILE.png [--backup DIR]
    testbed topology [--format svg|dot|json|png] [-o FILE]
    testbed ui [--port P] [--monitoring NAME] [--collector HOST:PORT] [--refresh SECONDS]

Every command but gc reads one Reservation of a stack (`--cwd` project directory, `--stack`, default
the selected one, `--reservation` when there are several) through the Automation API; nothing
is re-implemented from Pulumi and nothing is changed in the stack. Bad input is one
`testbed: error: …` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cwd", default=".", metavar="DIR", help="the Pulumi project directory (default: .)")
    common.add_argument("--stack", "-s", metavar="NAME", help="the stack (default: the selected stack)")
    common.add_argument("--reservation", "-r", metavar="NAME", help="the Reservation resource, when the stack has several")

    parser = argparse.ArgumentParser(prog="testbed", description="The hosts of a live pulumi-testbed stack.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inv = sub.add_parser(
        "inventory",
        parents=[common],
        help="print an Ansible inventory of the stack's hosts",
        description="Print the stack's hosts as an Ansible inventory (groups = roles). The private "
        "key is a 0600 file in a private cache, referenced by path.",
    )
    inv.add_argument("--format", "-f", choices=("yaml", "json", "ini"), default="yaml")
    inv.add_argument(
        "--plugin-file",
        metavar="FILE",
        help="instead, write the source file of the `testbed` inventory plugin (name ending in "
        "testbed.yml): `ansible -i FILE` then reads the live stack at each run",
    )

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a shell command on the hosts matching a pattern",
        description="Run COMMAND under /bin/sh on every host PATTERN (an Ansible pattern over roles "
        "and host names) matches; per-host results; exit 1 if any host failed.",
    )
    run.add_argument("pattern", metavar="PATTERN")
    run.add_argument("words", nargs="+", metavar="COMMAND", help="after `--`; words are joined with spaces")
    run.add_argument("--timeout", type=float, default=0, metavar="SECONDS", help="kill the command after this long")
    run.add_argument("--become", action="store_true", help="run as root through sudo when the login user is not root")
    run.add_argument("--json", action="store_true", help="print the per-host results as JSON")

    ssh = sub.add_parser(
        "ssh",
        parents=[common],
        help="open a shell (or run a command) on one host",
        description="exec `ssh -F <generated ssh_config> HOST [COMMAND]`.",
    )
    ssh.add_argument("host", metavar="HOST", help="a host name, or a role with exactly one host")
    ssh.add_argument("words", nargs="*", metavar="COMMAND", help="after `--`")

    gc = sub.add_parser(
        "gc",
        help="list (and with --yes remove) leftovers no stack can release any more",
        description="List the local reservations, stray namespaces and cached CLI keys on this machine "
        "that no stack holds any more (interrupted creates, removed stacks), checked against "
        "the stacks of the project in --cwd; --yes removes them.",
    )
    gc.add_argument("--cwd", default=".", metavar="DIR", help="the Pulumi project directory (default: .)")
    gc.add_argument("--yes", "-y", action="store_true", help="remove what is listed (default: only list)")

    from .metrics import add_parsers as add_metrics  # commands that register their own subparsers and set `handler`
    from .tunnel import add_parser as add_tunnel

    add_tunnel(sub, common)
    add_metrics(sub, common)
    from . import compare, topology, ui  # every Reservation of the stack: no --reservation

    topology.add_parser(sub)
    compare.add_parser(sub)
    ui.add_parser(sub)
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from ..remote.api import PatternError, RemoteError
    from . import stacks

    try:
        if getattr(args, "handler", None) is not None:  # tunnel, metrics, plot
            return int(args.handler(args))
        if args.command == "gc":
            from .gc import gc

            return gc(args.cwd, args.yes)
        target = stacks.load(args.cwd, args.stack, args.reservation)
        if args.command == "inventory":
            from . import inventory

            if args.plugin_file:
                print(inventory.write_plugin_file(target, args.plugin_file, args.reservation is not None), file=sys.stderr)
            else:
                sys.stdout.write(inventory.render(target, args.format))
            return 0
        if args.command == "run":
            from .run import run

            return run(target, args.pattern, args.words, timeout=args.timeout, become=args.become, as_json=args.json)
        from .ssh import ssh

        ssh(target, args.host, args.words)
    except (stacks.CliError, PatternError, RemoteError) as err:
        print(f"testbed: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `testbed inventory | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as err:  # noqa: BLE001 - a bug, still no traceback unless asked for
        if os.environ.get("TESTBED_DEBUG"):
            raise
        print(f"testbed: internal error: {type(err).__name__}: {err} (TESTBED_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
