"""`testbed:index:getFacts` (Invoke): the Ansible facts of a reservation's hosts.

Input errors come back as Check-like failures naming the property (a pattern matching nothing,
an unknown fact subset, a malformed inventory); a host that cannot be reached fails the call
with a message naming it. Nothing on the hosts changes, so it also runs during preview once
the reservation exists (the SDK does not call it while the inventory is still unknown).
"""

from __future__ import annotations

from typing import Any

from .common.deadlines import deadline
from .common.results import CheckFailure
from .functions_schema import GetFactsArgs
from .protocol.codec import UNKNOWN, Secret, has_unknowns, reveal
from .protocol.errors import ResourceFailure
from .remote import PatternError, RemoteError, match_hosts
from .remote.facts import check_subset, curate, gather
from .resources.base import ProviderContext
from .resources.steps import inventory_of
from .typed.check import check_inputs
from .typed.model import default_of

SSH_KEYS = {"known_hosts": "knownHosts", "private_key": "privateKey", "public_key": "publicKey", "proxy_command": "proxyCommand"}


def camel_inventory(value: Any) -> Any:
    """The inventory under the schema's names. The Python SDK serializes an output-type object
    (a Reservation's `inventory`, typed `Inventory`) passed to an invoke under its Python names
    (`ssh.private_key`); resources get the schema's. Only the SSH settings have multi-word
    names (host variables and role names are user data and stay as they are)."""
    if isinstance(value, Secret):
        return Secret(camel_inventory(value.value))
    if isinstance(value, dict) and isinstance(value.get("ssh"), (dict, Secret)):
        ssh = value["ssh"]
        wrap = Secret if isinstance(ssh, Secret) else (lambda v: v)
        plain = ssh.value if isinstance(ssh, Secret) else ssh
        if isinstance(plain, dict):
            return {**value, "ssh": wrap({SSH_KEYS.get(k, k): v for k, v in plain.items()})}
    return value


def check(args: dict[str, Any]) -> list[CheckFailure]:
    checked = check_inputs(GetFactsArgs, args, "getFacts")
    failures = checked.failures
    subset = reveal(args.get("subset"))
    if isinstance(subset, list):
        failures += [CheckFailure(prop, reason) for prop, reason in check_subset(subset)]
    inventory = args.get("inventory")
    if inventory is UNKNOWN:
        failures.append(CheckFailure("inventory", "required: a Reservation's `inventory` output"))
    elif not failures and not has_unknowns(inventory):
        try:
            match_hosts(inventory_of(args), args.get("on", "all"))
        except PatternError as err:
            failures.append(CheckFailure("on", str(err)))
        except (KeyError, TypeError, ValueError) as err:
            failures.append(CheckFailure("inventory", f"not a Reservation inventory ({err})"))
    return failures


async def get_facts(ctx: ProviderContext, args: dict[str, Any]) -> tuple[dict[str, Any] | None, list[CheckFailure]]:
    args = {k: v for k, v in args.items() if v is not None}
    if "inventory" in args:
        args["inventory"] = camel_inventory(args["inventory"])
    failures = check(args)
    if failures:
        return None, failures
    pattern = args.get("on", "all")
    timeout = float(args["timeout"]) if "timeout" in args else float(default_of(GetFactsArgs, "timeout"))
    async with deadline(ctx.cancelled, timeout) as limit:
        try:
            facts, errors = await gather(inventory_of(args), pattern, reveal(args.get("subset")), timeout=timeout, cancelled=limit.stop)
        except PatternError as err:
            return None, [CheckFailure("on", str(err))]
        except RemoteError as err:
            raise ResourceFailure(f"getFacts: could not gather facts: {err}") from err
    if errors:
        detail = "; ".join(f"{h}: {why}" for h, why in errors.items())
        raise ResourceFailure(f"getFacts: no facts from {len(errors)} of {len(errors) + len(facts)} host(s): {detail}")
    names = [h for h in match_hosts(inventory_of(args), pattern)]
    return {"names": names, "hosts": {h: curate(h, facts[h]) for h in names}}, []
