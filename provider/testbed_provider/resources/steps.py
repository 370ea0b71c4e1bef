"""What every remote step (Command, Play, Fetch) shares: its inventory input, and which
machines it reaches (a re-run is due when they change, not when another host does)."""

from __future__ import annotations

import hashlib
import json
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


def targets(inputs: dict[str, Any], with_vars: bool = False) -> Optional[list[tuple[str, ...]]]:
    """The machines a step reaches: (name, address, host key) of every matched host, plus its
    Ansible variables (networks, roles, its group's `vars`) for steps that template them."""
    try:
        inventory = inventory_of(inputs)
        names = match_hosts(inventory, inputs.get("on", "all"))
    except (PatternError, KeyError, TypeError, ValueError):
        return None
    keys = inventory.get("ssh", {}).get("knownHosts", "")
    by_name = {h["name"]: h for h in inventory["hosts"]}
    out = []
    for n in names:
        entry: tuple[str, ...] = (n, by_name[n]["address"], _host_key(keys, n))
        if with_vars:
            h = by_name[n]
            entry += (json.dumps([h.get("vars") or {}, h.get("networks") or [], h.get("roles") or []], sort_keys=True),)
        out.append(entry)
    return out


def _host_key(known_hosts: str, name: str) -> str:
    for line in known_hosts.splitlines():
        first = line.split(" ", 1)[0]
        if name in first.split(","):
            return hashlib.sha256(line.encode()).hexdigest()[:16]
    return ""
