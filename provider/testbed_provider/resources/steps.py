"""What every remote step (Command, Play, Fetch) shares: its inventory input, and which
machines it reaches (a re-run is due when they change, not when another host does)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Iterable, Optional

from ..common.results import CheckFailure
from ..protocol.codec import UNKNOWN, has_unknowns, reveal
from ..protocol.errors import PartialFailure, ResourceFailure
from ..protocol.redact import REDACTOR
from ..remote import PatternError, match_hosts
from ..remote.patterns import match_planned
from ..typed.check import check_inputs, with_defaults
from ..typed.model import Resource, input_names
from .base import PlannedHosts, ProviderContext, ReadResult, ResourceController
from .diff import DiffResult, Kind, diff_inputs


def top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def declassify(props: dict[str, Any]) -> None:
    """Everything in a step's `inventory` but the private key is public.

    The Reservation returns its inventory with the key alone secret, but the SDKs make the
    whole object secret once one field is, so host names, addresses and roles reach a step as
    secrets and the redactor would learn them: every later line naming a host (this step's,
    or the Reservation's `adding server-2`) would read `[secret]-2`. The server calls this
    on every decoded request of a step, before anything can be logged."""
    inventory = reveal(props.get("inventory")) if isinstance(props, dict) else None
    if isinstance(inventory, dict):
        ssh = inventory.get("ssh")
        public_ssh = {k: v for k, v in ssh.items() if k != "privateKey"} if isinstance(ssh, dict) else None
        REDACTOR.declassify([inventory.get("hosts"), inventory.get("groups"), public_ssh])


class Step(ResourceController):
    """A controller of a remote step (Command, Play, Fetch): its `inventory` input is a
    Reservation's, public but for the key."""

    definition: Resource
    hidden_keys: frozenset[str] = frozenset()  # inputs Check computes beside the program's (hashes)
    ran_key = "results"  # an output only a step that ran has (import is refused without it)
    with_vars = False  # whether the matched hosts' variables matter (steps that template them)

    def declassify(self, props: dict[str, Any]) -> None:
        declassify(props)

    @classmethod
    def input_keys(cls) -> set[str]:
        return input_names(cls.definition.inputs) | cls.hidden_keys

    def diff(self, outputs: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return step_diff(outputs, old_inputs, news, self.input_keys(), with_vars=self.with_vars, definition=self.definition.inputs)

    async def read(self, id: str, urn: str, outputs: dict[str, Any], inputs: dict[str, Any]) -> Optional[ReadResult]:
        """A step's state is what it did: refresh keeps it (re-running is `pulumi up`'s)."""
        if self.ran_key not in outputs:
            raise ResourceFailure(f"importing a {self.definition.token.rsplit(':', 1)[-1]} is not supported; it runs on `pulumi up`")
        return ReadResult(id, outputs, inputs or {k: v for k, v in outputs.items() if k in self.input_keys()})

    # ---- running (Play and Fetch; Command, with its background runs, has its own) -----------

    computed: tuple[str, ...] = ()  # the outputs a run produces
    rerun_keys: frozenset[str] = frozenset()  # inputs whose change runs the step again

    async def run(self, urn: str, inputs: dict[str, Any], timeout: float) -> tuple[dict[str, Any], Optional[str]]:
        """Run the step: its outputs, and a failure message when some host failed."""
        raise NotImplementedError

    def failed_before(self, outputs: dict[str, Any]) -> bool:
        """Whether the recorded run failed somewhere (the next update runs it again)."""
        return False

    async def create(self, urn: str, inputs: dict[str, Any], preview: bool, timeout: float = 0) -> tuple[str, dict[str, Any]]:
        if preview:
            await note_unchecked_pattern(self.ctx, urn, inputs)
            return "", {**inputs, **{k: UNKNOWN for k in self.computed}}
        rid = uuid.uuid4().hex[:16]
        outputs, failure = await self.run(urn, inputs, timeout)
        if failure:
            raise PartialFailure(failure, rid, outputs)  # recorded with its results; `pulumi up` retries
        return rid, outputs

    async def update(
        self,
        id: str,
        urn: str,
        outputs: dict[str, Any],
        old_inputs: dict[str, Any],
        news: dict[str, Any],
        preview: bool,
        timeout: float = 0,
    ) -> dict[str, Any]:
        changes = self.diff(outputs, old_inputs, news).detailed
        if not self.failed_before(outputs) and not any(top(p) in self.rerun_keys | {"hosts"} for p in changes):
            return {**news, **{k: outputs[k] for k in self.computed if k in outputs}}  # recorded, not run
        if preview:
            await note_unchecked_pattern(self.ctx, urn, news)
            return {**news, **{k: UNKNOWN for k in self.computed}}
        new_outputs, failure = await self.run(urn, news, timeout)
        if failure:
            raise PartialFailure(failure, id, new_outputs)
        return new_outputs

    def check_definition(self, news: dict[str, Any]) -> tuple[dict[str, Any], list[CheckFailure]]:
        """The generic Check of the step's definition: (inputs with defaults, failures); the
        step adds its own rules, then `check_pattern`."""
        d = self.definition
        checked = check_inputs(d.inputs, news, d.label or d.token.rsplit(":", 1)[-1])
        return checked.inputs, checked.failures

    def check_pattern(self, inputs: dict[str, Any], failures: list[CheckFailure]) -> Optional[dict[str, Any]]:
        """`on` against the inventory (or the planned hosts at a first preview), once every other
        rule passed: the revealed inventory when it matched."""
        return check_targets(inputs, not failures, lambda p, r: failures.append(CheckFailure(p, r)), self.ctx.planned.values())


async def note_unchecked_pattern(ctx: ProviderContext, urn: str, inputs: dict[str, Any]) -> None:
    """Preview of a step whose inventory is unknown: say when its pattern could not be
    checked yet (no Reservation of this provider describes hosts it could name)."""
    on = inputs.get("on", "all")
    if not has_unknowns(inputs.get("inventory")) or not isinstance(on, str) or on.strip() == "all":
        return
    _, judged = planned_verdict(on, ctx.planned.values())
    if not judged:
        await ctx.log.info(urn, UNCHECKED.format(on=on))


def inventory_of(inputs: dict[str, Any]) -> dict[str, Any]:
    """The revealed inventory (its public parts declassified, see declassify)."""
    declassify(inputs)
    return reveal(inputs["inventory"])


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
    if (
        timeout is not None
        and timeout is not UNKNOWN
        and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0)
    ):
        fail("timeout", "must be a number of seconds ≥ 0 (0: no limit)")


UNCHECKED = "the host pattern `{on}` will be checked against the reservation's hosts once its inventory is known (at `pulumi up`)"


def planned_verdict(on: str, planned: Iterable[PlannedHosts]) -> tuple[Optional[str], bool]:
    """Judge a pattern against the hosts that Reservations' inputs describe: (an error, whether
    it was judged). Wrong only when every planned reservation judged it wrong: the step's
    inventory comes from one of them, but which one is not known while it is unknown."""
    errors: list[str] = []
    for plan in planned:
        try:
            if match_planned(list(plan.hosts), on) is None:
                return None, False  # may name a host not named yet
            return None, True
        except PatternError as err:
            errors.append(str(err))
    if not errors:
        return None, False
    return (
        f"{errors[0]}; checked against the hosts the Reservation's inputs describe, as its inventory is not known before it is reserved"
    ), True


def check_targets(inputs: dict[str, Any], ready: bool, fail, planned: Iterable[PlannedHosts] = ()) -> Optional[dict[str, Any]]:
    """Check rules of `inventory` and `on`: the revealed inventory when the pattern matched.
    `ready`: no other failure so far (the pattern is only tried on otherwise valid inputs).
    While the inventory is unknown (a first preview), `on` is checked against `planned`."""
    inventory, on = inputs.get("inventory"), inputs.get("on")
    if inventory is None:
        fail("inventory", "required: a Reservation's `inventory` output")
    elif has_unknowns(inventory) and isinstance(on, str) and on.strip() and ready:
        error, _ = planned_verdict(on, planned)
        if error:
            fail("on", error)
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


def step_diff(
    outputs: dict[str, Any],
    old_inputs: dict[str, Any],
    news: dict[str, Any],
    input_keys: set[str],
    with_vars: bool = False,
    definition: Optional[type] = None,
) -> DiffResult:
    """A step's diff: inputs compared as usual (declared defaults given or omitted are the same),
    except the inventory, which is compared by what it means for the step — the machines it
    reaches (and their variables, for steps that template them); another host's change is
    recorded without re-running."""
    old_inputs = old_inputs or {k: v for k, v in outputs.items() if k in input_keys}
    if definition is not None:
        result = diff_inputs(with_defaults(definition, old_inputs), with_defaults(definition, news), replace_keys=())
    else:
        result = diff_inputs(old_inputs, news, replace_keys=())
    result.detailed = {p: k for p, k in result.detailed.items() if not p.startswith("inventory")}
    if has_unknowns(news.get("inventory")) or has_unknowns(news.get("on")):
        result.detailed.setdefault("hosts", Kind.UPDATE)
    elif targets(old_inputs, with_vars) != targets(news, with_vars):
        result.detailed["hosts"] = Kind.UPDATE
    elif reveal(old_inputs.get("inventory")) != reveal(news.get("inventory")) and not result.detailed:
        result.detailed["inventory"] = Kind.UPDATE
    return result
