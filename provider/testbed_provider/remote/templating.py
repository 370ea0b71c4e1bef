"""Shell commands as Jinja templates, rendered per host by ansible-core itself.

EnOSlib's `run_command("iperf3 -c {{ server_ip }}", extra_vars={...})` goes through Ansible,
which templates the command once per host. A Command does the same, on the controller, before
either engine runs anything: each matched host gets its own rendering, and both engines (the
direct-SSH fast path and ansible-playbook) run exactly that text, quoted into the same remote
scripts (so they cannot disagree about it, and the rendered text is what decides re-runs).

The variables are those a Play on the same hosts sees: the inventory file's host variables
(`testbed_networks`, `testbed_roles`, the machine group's `vars`, `ansible_host`…), Ansible's
magic variables (`inventory_hostname`, `groups`, `group_names`, `hostvars`,
`ansible_play_hosts`…) and the step's extra variables (`vars`, highest precedence, as
`ansible-playbook -e`). They are loaded the way ansible-playbook loads them (the inventory
through the yaml plugin's rules, the extra vars as a trusted `-e @file`), so a variable whose
value is itself a template is rendered too, as in a Play.

Only text containing `{{` or `{%` is a template: any other command is left byte for byte as it
is (a shell's `${#var}` is no Jinja comment). Importing the templating parts of ansible-core
costs ~0.3 s, paid on the first template only (or by a warm-up).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Mapping, Optional, Sequence

from .api import RemoteError
from .inventory import Inventory, parse
from .materialize import ansible_inventory_data
from .patterns import IMPORT_LOCK

MARKS = ("{{", "{%")
PLAY_NAME = "pulumi-testbed step"  # what the Ansible engine's play is called (ansible_play_name)
REASON_LIMIT = 300  # characters of Ansible's message kept per failure

_ansible: Any = None


def is_template(text: Any) -> bool:
    """Whether `text` is rendered: a string with `{{` or `{%`."""
    return isinstance(text, str) and any(m in text for m in MARKS)


class TemplateError(RemoteError):
    """The template could not be rendered on some hosts: `failures` is (host, Ansible's reason)."""

    def __init__(self, failures: Sequence[tuple[str, str]]):
        self.failures = list(failures)
        super().__init__(describe(self.failures))


def describe(failures: Sequence[tuple[str, str]]) -> str:
    """`on client-1, client-2: 'x' is undefined` (hosts sharing a reason listed together)."""
    by_reason: dict[str, list[str]] = {}
    for host, reason in failures:
        by_reason.setdefault(reason, []).append(host)
    parts = []
    for reason, hosts in by_reason.items():
        shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
        parts.append(f"on {shown}: {reason}")
    return "; ".join(parts)


def warm_up() -> None:
    """Import ansible-core's templating now (from a thread), not on the first template."""
    try:
        _load()
    except Exception:  # noqa: BLE001 - reported where it matters, on first use
        pass


def _load() -> Any:
    global _ansible
    with IMPORT_LOCK:
        if _ansible is None:
            from ansible.errors import AnsibleError
            from ansible.inventory.manager import InventoryManager
            from ansible.parsing.dataloader import DataLoader
            from ansible.playbook.play import Play
            from ansible.template import Templar, trust_as_template
            from ansible.vars.hostvars import HostVars
            from ansible.vars.manager import VariableManager

            a = SimpleNamespace(
                AnsibleError=AnsibleError,
                InventoryManager=InventoryManager,
                DataLoader=DataLoader,
                Play=Play,
                Templar=Templar,
                trust=trust_as_template,
                HostVars=HostVars,
                VariableManager=VariableManager,
            )
            _ansible = a
    return _ansible


def _reason(err: BaseException) -> str:
    text = str(getattr(err, "message", None) or err).strip().splitlines()
    first = text[0] if text else type(err).__name__
    return first[:REASON_LIMIT]


def _trusted(a: Any, loader: Any, data: Any) -> Any:
    """`data` as ansible-playbook reads it from a file it trusts (its strings may be templates)."""
    return loader.load(a.trust(json.dumps(data)), json_only=True)


def render(
    inventory: dict[str, Any] | Inventory,
    hosts: Sequence[str],
    template: str,
    extra_vars: Optional[Mapping[str, Any]] = None,
) -> dict[str, str]:
    """Each of `hosts` (matched names of the inventory) → its rendering of `template`, in
    `hosts` order. A text that is no template is returned unchanged for every host. Raises
    TemplateError naming the hosts where it fails (an undefined variable, a syntax error…)."""
    if not is_template(template):
        return {h: template for h in hosts}
    inv = inventory if isinstance(inventory, Inventory) else parse(inventory, connection=False)
    a = _load()
    failures: list[tuple[str, str]] = []
    out: dict[str, str] = {}
    # All of it under the lock every use of ansible-core takes: rendering imports plugins lazily
    # (vars plugins, collection metadata), which deadlocks against a warm-up importing in a thread.
    with IMPORT_LOCK:
        loader = a.DataLoader()
        manager = a.InventoryManager(loader=loader, sources=None, parse=False)
        data = _trusted(a, loader, ansible_inventory_data(inv)) if inv.hosts else {"all": {"hosts": {}, "children": {}}}
        # As the yaml inventory plugin builds it from the same file (materialize writes it):
        # groups, then every host in `all` with its variables, then each group's members.
        for role in data["all"]["children"]:
            manager.add_group(role)
        for name, variables in data["all"]["hosts"].items():
            manager.add_host(name, "all")
            host = manager.get_host(name)
            for key, value in variables.items():
                host.set_variable(key, value)
        for role, group in data["all"]["children"].items():
            for name in group["hosts"]:
                manager.add_host(name, role)
        manager.reconcile_inventory()
        variables = a.VariableManager(loader=loader, inventory=manager)
        variables._extra_vars = _trusted(a, loader, dict(extra_vars or {}))
        a.HostVars(inventory=manager, variable_manager=variables, loader=loader)  # provides `hostvars`
        manager.subset(list(hosts))  # the play's hosts, as `--limit` makes them
        play = a.Play.load(
            {"name": PLAY_NAME, "hosts": "all", "gather_facts": False, "tasks": []}, variable_manager=variables, loader=loader
        )
        text = a.trust(template)
        for name in hosts:
            host = manager.get_host(name)
            if host is None:
                failures.append((name, "not in the inventory"))
                continue
            try:
                context = variables.get_vars(play=play, host=host, include_hostvars=True)
                value = a.Templar(loader=loader, variables=context).template(text)
            except a.AnsibleError as err:
                failures.append((name, _reason(err)))
                continue
            except Exception as err:  # noqa: BLE001 - a filter or lookup raising anything else
                failures.append((name, f"{type(err).__name__}: {_reason(err)}"))
                continue
            # A template that is one expression may render to a number or a list: the shell
            # module would get its text, as Ansible turns a module's `str` argument into text.
            out[name] = value if isinstance(value, str) else str(value)
    if failures:
        raise TemplateError(failures)
    return out
