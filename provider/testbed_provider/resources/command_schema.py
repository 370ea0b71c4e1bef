"""Typed definition of testbed:index:Command: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..typed.model import Resource, prop, schema_type
from .steps_schema import NON_BLANK, SECONDS_HINT, StepArgs


@schema_type("testbed:index:CommandResult", "What a command did on one host.")
@dataclass(kw_only=True)
class CommandResult:
    host: str = prop("Host name.")
    rc: int = prop("Exit code (-1 when the host was unreachable or the command timed out).")
    stdout: str = prop("Standard output, trailing newlines stripped.")
    stderr: str = prop("Standard error, trailing newlines stripped.")
    started_at: str = prop("When it started (ISO 8601, UTC).")
    duration_s: float = prop("How long it ran, in seconds.")
    status: str = prop("ok, failed (non-zero exit), unreachable or timeout.")


# testbed:index:Command
@dataclass(kw_only=True)
class CommandArgs(StepArgs):
    create: str = prop(
        "Shell command run on `pulumi up` when the step is created. A Jinja template (text with `{{` or `{%`) "
        "is rendered on each host with the variables a Play sees (`testbed_networks`, `testbed_roles`, its "
        "group's `vars`, `inventory_hostname`, `groups`, `hostvars`…) and `vars`; any other text runs as it is.",
        pattern=NON_BLANK,
        hint="a non-empty shell command",
    )
    update: Optional[str] = prop(
        "Shell command run when a re-run is due (a change of `create` — for a template, of what it "
        "renders to on some host —, `environment`, `triggers`, `on`, `background`, `become` or of the "
        "matched hosts); `create` when omitted. May be a template, like `create`.",
        pattern=NON_BLANK,
        hint="a non-empty shell command",
    )
    delete: Optional[str] = prop(
        "Shell command run on destroy (e.g. stop a service). May be a template, like `create`.",
        pattern=NON_BLANK,
        hint="a non-empty shell command",
    )
    background: Optional[bool] = prop("Start the command detached so it outlives the step (like a tmux session); destroy stops it.")
    environment: Optional[dict[str, str]] = prop("Environment variables for the command.")
    triggers: Optional[list[Any]] = prop("Any values: a change re-runs the command.")
    timeout: Optional[float] = prop(
        "Seconds before a host's run is killed and reported (0 or omitted: no limit).", minimum=0, hint=SECONDS_HINT
    )
    become: Optional[bool] = prop("Run as root through sudo when the login user is not root.")
    vars: Optional[dict[str, Any]] = prop(
        "Variables for the command's templates, beside each host's own (EnOSlib's `extra_vars`; "
        "Ansible extra vars, which take precedence). Only a change of what a template renders "
        "to re-runs the command.",
        hint="an object of variables for the command's templates, e.g. {server: …, duration: 10}",
    )
    ready_port: Optional[int] = prop(
        "With `background`: the step completes once a TCP socket listens on this port on each host "
        "(checked without connecting to it), so the next step never races the server. A port in "
        "use before the command starts fails the step.",
        minimum=1,
        maximum=65535,
        hint="a TCP port number",
    )
    ready_command: Optional[str] = prop(
        "With `background`: a shell command run on each host every 0.1 s until it exits 0 (may "
        "be a template, like `create`); with `readyPort`, both must hold.",
        pattern=NON_BLANK,
        hint="a non-empty shell command (it must exit 0 once the background command is ready)",
    )
    ready_timeout: float = prop(
        "Seconds to wait for `readyPort`/`readyCommand` on each host; a host where the command is not "
        "ready by then (or exits before) fails the step, naming it, and the command is stopped there.",
        default=60.0,
        minimum=0,
        hint="a number of seconds ≥ 0",
    )


@dataclass(kw_only=True)
class CommandState(CommandArgs):
    results: list[CommandResult] = prop("One entry per matched host.", output=True)
    stdout: Optional[str] = prop("Standard output, when exactly one host matched.", output=True)
    hosts: list[str] = prop("The hosts the command ran on.", output=True)


COMMAND = Resource(
    "testbed:index:Command",
    "A shell command run through SSH on the hosts of a Reservation that match a pattern (EnOSlib's `run_command`). Preview runs nothing. A non-zero exit on any host fails the step, naming the hosts, their exit codes and the end of their stderr; the partial results stay in the stack and the next `pulumi up` retries.",
    CommandArgs,
    CommandState,
)
