"""Read a Reservation's `inventory` out of a Pulumi stack, through the Automation API.

The CLI never re-implements Pulumi: it asks the `pulumi` CLI (via `pulumi.automation`) for the
stack's deployment with secrets shown, the way `pulumi stack export --show-secrets` does, so a
program need not export anything and any backend or secrets provider Pulumi supports works
(with the passphrase provider, PULUMI_CONFIG_PASSPHRASE or _FILE must be set, as for `pulumi`).
Stacks are addressed with `--stack` and never *selected*: reading one must not change which
stack the user's next `pulumi up` acts on (`automation.select_stack` would).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..remote.inventory import Inventory, parse

RESERVATION = "testbed:index:Reservation"
SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class CliError(Exception):
    """Bad input or an unusable stack: printed as one `testbed: error: …` line, never a traceback."""


@dataclass(frozen=True)
class Target:
    """The reservation a command acts on, and where it came from (for messages and cache keys)."""

    cwd: str
    stack: str
    reservation: str
    inventory: Inventory
    raw: dict[str, Any]  # the revealed `inventory` output (holds the private key: never print it)

    @property
    def label(self) -> str:
        return f"stack `{self.stack}`, reservation `{self.reservation}`"

    @property
    def origin(self) -> dict[str, str]:
        """Where the CLI's cached files for this reservation came from (see cache.ORIGIN)."""
        from ..testbeds.local.manifest import backend_hash

        return {"project": self.cwd, "stack": self.stack, "reservation": self.reservation, "backend": backend_hash()}


def reveal(value: Any) -> Any:
    """A value of an exported deployment with its secrets decoded (`--show-secrets` gives each
    secret as `{sig: secret, plaintext: <JSON text>}`; secrets may nest)."""
    if isinstance(value, dict):
        if value.get(SIG) == SECRET_SIG:
            if "plaintext" not in value:
                raise CliError("the stack's secrets came back encrypted (is the secrets provider configured?)")
            return reveal(json.loads(value["plaintext"]))
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _pulumi_error(err: Exception) -> str:
    """The `error:` lines of a failed pulumi command (its stderr), without Automation API noise."""
    stderr = getattr(err, "stderr", None) or ""
    if not stderr:  # CommandError keeps the result only in its message
        stderr = str(err).split("stderr:", 1)[-1]
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [re.sub(r"^error:\s*", "", ln) for ln in lines if ln.startswith("error:")]
    return "; ".join(errors or lines[-3:]) or str(err).strip() or type(err).__name__


def _workspace(cwd: str) -> Any:
    from pulumi import automation as auto

    if not any(os.path.isfile(os.path.join(cwd, f)) for f in ("Pulumi.yaml", "Pulumi.yml")):
        raise CliError(f"no Pulumi project in {cwd} (no Pulumi.yaml): run from the project directory or pass --cwd DIR")
    try:
        return auto.LocalWorkspace(work_dir=cwd)
    except FileNotFoundError:
        raise CliError("the `pulumi` CLI is not on PATH (source scripts/env.sh of pulumi-testbed)") from None
    except auto.CommandError as err:
        raise CliError(f"pulumi failed in {cwd}: {_pulumi_error(err)}") from None


def _stack_names(ws: Any) -> list[str]:
    try:
        return [s.name for s in ws.list_stacks()]
    except Exception:  # noqa: BLE001 - only used to enrich an error message
        return []


def stack_names(cwd: str) -> list[str]:
    """The project's stacks, by name."""
    return _stack_names(_workspace(os.path.abspath(cwd)))


def export(cwd: str, stack: Optional[str]) -> tuple[str, dict[str, Any]]:
    """(stack name, its deployment with secrets revealed). `stack` None: the selected stack."""
    from pulumi import automation as auto

    cwd = os.path.abspath(cwd)
    ws = _workspace(cwd)
    if stack is None:
        try:
            current = ws.stack()
        except auto.CommandError as err:
            raise CliError(f"pulumi failed in {cwd}: {_pulumi_error(err)}") from None
        if current is None:
            names = _stack_names(ws)
            raise CliError(
                f"no stack is selected in {cwd}: pass --stack NAME"
                + (f" (stacks: {', '.join(names)})" if names else " (there is no stack yet)")
            )
        stack = current.name
    try:
        deployment = ws.export_stack(stack).deployment or {}
    except auto.StackNotFoundError:
        names = _stack_names(ws)
        raise CliError(f"no stack `{stack}` in {cwd}" + (f" (stacks: {', '.join(names)})" if names else "")) from None
    except auto.CommandError as err:
        raise CliError(f"could not read stack `{stack}`: {_pulumi_error(err)}") from None
    return stack, deployment


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def find_reservation(stack: str, deployment: dict[str, Any], name: Optional[str]) -> tuple[str, dict[str, Any]]:
    """(resource name, revealed outputs) of the stack's Reservation, or of the one named `name`."""
    found = [r for r in deployment.get("resources") or [] if r.get("type") == RESERVATION and not r.get("delete")]
    names = [_name(r.get("urn", "")) for r in found]
    if not found:
        raise CliError(f"stack `{stack}` has no {RESERVATION} (nothing reserved yet: run `pulumi up`)")
    if name is None:
        if len(found) > 1:
            raise CliError(f"stack `{stack}` has {len(found)} reservations ({', '.join(names)}): pass --reservation NAME")
        chosen = found[0]
    else:
        matching = [r for r, n in zip(found, names) if n == name]
        if not matching:
            raise CliError(f"stack `{stack}` has no reservation `{name}` (reservations: {', '.join(names)})")
        chosen = matching[0]
    return _name(chosen["urn"]), reveal(chosen.get("outputs") or {})


def load(cwd: str = ".", stack: Optional[str] = None, reservation: Optional[str] = None) -> Target:
    """The reservation a command targets, its inventory checked by the remote layer."""
    stack, deployment = export(cwd, stack)
    name, outputs = find_reservation(stack, deployment, reservation)
    raw = outputs.get("inventory")
    if not isinstance(raw, dict):
        raise CliError(f"reservation `{name}` of stack `{stack}` has no `inventory` output yet (run `pulumi up`)")
    try:
        inv = parse(raw)
    except ValueError as err:  # InventoryError: names the field, never quotes the key
        raise CliError(f"reservation `{name}` of stack `{stack}`: {err}") from None
    return Target(os.path.abspath(cwd), stack, name, inv, raw)


def find_resources(deployment: dict[str, Any], type_: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, revealed outputs) of every live resource of type `type_` in a deployment, in state order."""
    found = [r for r in deployment.get("resources") or [] if r.get("type") == type_ and not r.get("delete")]
    return [(_name(r.get("urn", "")), reveal(r.get("outputs") or {})) for r in found]


def target_of(cwd: str, stack: str, name: str, raw: Any, what: str = "reservation") -> Target:
    """A Target from an `inventory` output (a Reservation's, or a resource's that carries one)."""
    if not isinstance(raw, dict):
        raise CliError(f"{what} `{name}` of stack `{stack}` has no `inventory` output yet (run `pulumi up`)")
    try:
        inv = parse(raw)
    except ValueError as err:  # InventoryError: names the field, never quotes the key
        raise CliError(f"{what} `{name}` of stack `{stack}`: {err}") from None
    return Target(os.path.abspath(cwd), stack, name, inv, raw)
