"""What every remote step (Command, Play, Fetch) shares: its inventory input, and which
machines it reaches (a re-run is due when they change, not when another host does)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Optional

from ..protocol.codec import UNKNOWN, has_unknowns, reveal
from ..protocol.redact import REDACTOR
from ..remote import PatternError, match_hosts
from .diff import DiffResult, Kind, diff_inputs


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


def check_timeout(inputs: dict[str, Any], fail) -> None:
    timeout = inputs.get("timeout")
    if timeout is not None and timeout is not UNKNOWN and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0):
        fail("timeout", "must be a number of seconds ≥ 0 (0: no limit)")


def check_targets(inputs: dict[str, Any], ready: bool, fail) -> Optional[dict[str, Any]]:
    """Check rules of `inventory` and `on`: the revealed inventory when the pattern matched.
    `ready`: no other failure so far (the pattern is only tried on otherwise valid inputs)."""
    inventory, on = inputs.get("inventory"), inputs.get("on")
    if inventory is None:
        fail("inventory", "required: a Reservation's `inventory` output")
    elif not has_unknowns(inventory) and isinstance(on, str) and on.strip() and ready:
        try:
            inv = inventory_of(inputs)
            match_hosts(inv, on)
            return inv
        except PatternError as err:
            fail("on", str(err))
        except (KeyError, TypeError, ValueError) as err:
            fail("inventory", f"not a Reservation inventory ({err})")
    return None


def step_diff(outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any], input_keys: set[str],
              with_vars: bool = False) -> DiffResult:
    """A step's diff: inputs compared as usual, except the inventory, which is compared by what
    it means for the step — the machines it reaches (and their variables, for steps that
    template them); another host's change is recorded without re-running."""
    old_inputs = old_inputs or {k: v for k, v in outputs.items() if k in input_keys}
    result = diff_inputs(old_inputs, news, replace_keys=())
    result.detailed = {p: k for p, k in result.detailed.items() if not p.startswith("inventory")}
    if has_unknowns(news.get("inventory")) or has_unknowns(news.get("on")):
        result.detailed.setdefault("hosts", Kind.UPDATE)
    elif targets(old_inputs, with_vars) != targets(news, with_vars):
        result.detailed["hosts"] = Kind.UPDATE
    elif reveal(old_inputs.get("inventory")) != reveal(news.get("inventory")) and not result.detailed:
        result.detailed["inventory"] = Kind.UPDATE
    return result
