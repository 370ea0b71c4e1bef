"""Typed definition of testbed:index:Play: the source of its schema, Check and docs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..typed.model import Resource, prop, schema_type
from .steps_schema import SECONDS_HINT, StepArgs


@schema_type("testbed:index:PlayHostStats", "Ansible's recap for one host.")
@dataclass(kw_only=True)
class PlayHostStats:
    host: str = prop("Host name.")
    ok: int = prop("Tasks that ran fine (changed ones included).")
    changed: int = prop("Tasks that changed something.")
    failed: int = prop("Tasks that failed.")
    unreachable: int = prop("1 when the host could not be reached.")
    skipped: int = prop("Tasks skipped (`when`).")


@schema_type("testbed:index:PlayTaskResult", "What one task did on one host.")
@dataclass(kw_only=True)
class PlayTaskResult:
    task: str = prop("Task name.")
    host: str = prop("Host name.")
    status: str = prop("ok, changed, failed, skipped or unreachable.")
    msg: Optional[str] = prop("Ansible's message, if any.")
    rc: Optional[int] = prop("Exit code, for command-like modules.")
    stdout: Optional[str] = prop("Standard output, for command-like modules (first 4000 characters).")
    stderr: Optional[str] = prop("Standard error, for command-like modules (first 4000 characters).")


# testbed:index:Play
@dataclass(kw_only=True)
class PlayArgs(StepArgs):
    tasks: Optional[list[Any]] = prop(
        'Ansible tasks as data, each one module and its arguments plus task keywords, e.g. `{"name": "config", "ansible.builtin.template": {"src": "iperf.conf.j2", "dest": "/etc/iperf.conf"}, "register": "out"}`. Templated by Ansible (`{{ hostvars[\'server-1\'].testbed_networks.exp }}`); a relative `src` of copy/template/script is a file beside the Pulumi program, hashed so that an edit re-runs the play.'
    )
    playbook: Optional[str] = prop(
        "Instead of `tasks`: the path of a playbook file (relative to the Pulumi program); its plays run on the matched hosts, and the file with the templates, files, roles, vars, tasks… directories beside it is hashed so that an edit re-runs it."
    )
    vars: Optional[dict[str, Any]] = prop("Variables for every host (Ansible extra vars).")
    host_vars: Optional[dict[str, dict[str, Any]]] = prop("Variables per host name, beside those the Reservation gives each host.")
    gather_facts: Optional[bool] = prop("Gather Ansible facts first (`ansible_facts` in the tasks).")
    become: Optional[bool] = prop("Run the tasks as root through sudo when the login user is not root.")
    triggers: Optional[list[Any]] = prop("Any values: a change re-runs the play.")
    destroy_tasks: Optional[list[Any]] = prop("Tasks run on destroy (e.g. stop a service, remove a package).")
    timeout: Optional[float] = prop(
        "Seconds before the play is stopped and reported (0 or omitted: no limit).", minimum=0, hint=SECONDS_HINT
    )


@dataclass(kw_only=True)
class PlayState(PlayArgs):
    sources_hash: Optional[str] = prop(
        "Digest of the controller files the play uses (the playbook's directory, the `src` files of tasks).", output=True
    )
    hosts: list[str] = prop("The hosts the play ran on.", output=True)
    host_stats: list[PlayHostStats] = prop(
        "Per host: how many tasks were ok, changed, failed, unreachable, skipped (Ansible's recap).", output=True
    )
    changed: int = prop("Tasks that changed something, over all hosts (0 on a re-run of an idempotent play).", output=True)
    results: list[PlayTaskResult] = prop("Each task's result on each host, in the order they finished.", output=True)
    registered: dict[str, dict[str, Any]] = prop(
        "Values of `register`ed tasks: host → variable → Ansible's result (stdout, rc, …).", output=True
    )


PLAY = Resource(
    "testbed:index:Play",
    "Ansible tasks (or a playbook file) run on the hosts of a Reservation that match a pattern (EnOSlib's `actions()`). Preview runs nothing; an unchanged program runs nothing either, and a re-run of an idempotent play reports `changed: 0`. A failed task fails the step naming host, task and Ansible's message; partial results stay in the stack and the next `pulumi up` runs the play again.",
    PlayArgs,
    PlayState,
)
