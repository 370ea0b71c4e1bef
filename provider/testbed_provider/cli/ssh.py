"""`testbed ssh HOST [-- COMMAND]`: OpenSSH itself, on the provider's ssh_config.

The process becomes `ssh -F <cached ssh_config> HOST` (interactive without a command), so
ssh's own terminal handling, escape sequences and exit status are the user's. The config
carries the reservation's key, pinned known_hosts and ProxyCommand; its ControlMaster (kept
60 s) makes the next `testbed ssh` to that host immediate.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from ..remote.api import PatternError
from ..remote.patterns import match_hosts
from .cache import files_for
from .stacks import CliError, Target


def pick_host(target: Target, host: str) -> str:
    """A host name, or a pattern (a role) selecting exactly one host."""
    try:
        names = match_hosts(target.inventory, host)
    except PatternError as err:
        raise CliError(str(err)) from None
    if len(names) != 1:
        raise CliError(f"`{host}` matches {len(names)} hosts ({', '.join(names)}): name one")
    return names[0]


def ssh(target: Target, host: str, command: list[str]) -> NoReturn:
    name = pick_host(target, host)
    files = files_for(target.inventory, target.origin)
    argv = ["ssh", "-F", files.ssh_config, "--", name, *command]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp("ssh", argv)
    except OSError as err:
        raise CliError(f"could not start ssh: {err.strerror or err}") from None
