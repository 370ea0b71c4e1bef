"""What every remote step (Command, Play, Fetch) shares: its inventory input, and which
machines it reaches (a re-run is due when they change, not when another host does)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional

from ..protocol.codec import reveal
from ..protocol.redact import REDACTOR
from ..remote import PatternError, match_hosts


def top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def inventory_of(inputs: dict[str, Any]) -> dict[str, Any]:
    """The revealed inventory; everything in it but the private key is public (see declassify)."""
    inventory = reveal(inputs["inventory"])
    if isinstance(inventory, dict):
        ssh = inventory.get("ssh")
        public_ssh = {k: v for k, v in ssh.items() if k != "privateKey"} if isinstance(ssh, dict) else None
        REDACTOR.declassify([inventory.get("hosts"), inventory.get("groups"), public_ssh])
    return inventory


def targets(inputs: dict[str, Any]) -> Optional[list[tuple[str, str, str]]]:
    """The machines a command reaches: (name, address, host key) of every matched host."""
    try:
        inventory = inventory_of(inputs)
        names = match_hosts(inventory, inputs.get("on", "all"))
    except (PatternError, KeyError, TypeError, ValueError):
        return None
    keys = inventory.get("ssh", {}).get("knownHosts", "")
    by_name = {h["name"]: h for h in inventory["hosts"]}
    return [(n, by_name[n]["address"], _host_key(keys, n)) for n in names]


def _host_key(known_hosts: str, name: str) -> str:
    for line in known_hosts.splitlines():
        first = line.split(" ", 1)[0]
        if name in first.split(","):
            return hashlib.sha256(line.encode()).hexdigest()[:16]
    return ""
