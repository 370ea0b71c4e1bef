"""`testbed inventory`: the stack's hosts as an Ansible inventory (YAML, JSON or INI), and the
source file of the `testbed` inventory plugin.

The tree is the remote layer's own (`ansible_inventory_data`: groups = roles, hosts in
inventory order, interpreter pinned) plus, for all hosts, the key file and `-F <ssh_config>`
from the CLI cache: plain `ansible` then connects with the same key, pinned known_hosts and
ProxyCommand as the provider's steps. The key is referenced by path, never included.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
from typing import Any, Optional

from ..remote.materialize import ansible_inventory_data
from .cache import Files, files_for
from .stacks import CliError, Target

FORMATS = ("yaml", "json", "ini")
PLUGIN_NAME = "testbed"
PLUGIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ansible_plugins", "inventory")
PLUGIN_SUFFIXES = ("testbed.yml", "testbed.yaml")  # what the plugin accepts as its source files
BARE = re.compile(r"^[A-Za-z0-9_./:@%+,-]+$")  # INI values written without quotes


def tree(target: Target, files: Optional[Files] = None) -> dict[str, Any]:
    """The inventory as Ansible's YAML inventory structure (also what the plugin loads)."""
    files = files or files_for(target.inventory, target.origin)
    data = ansible_inventory_data(target.inventory)
    data["all"]["vars"] = {
        "ansible_ssh_private_key_file": files.key,
        "ansible_ssh_common_args": f"-F {shlex.quote(files.ssh_config)}",
    }
    return data


def _header(target: Target) -> str:
    return (
        f"Ansible inventory of Pulumi {target.label} ({target.cwd}), written by `testbed inventory`.\n"
        "The private key stays in its 0600 file, referenced by path."
    )


def _ini_value(value: Any) -> str:
    """A value as Ansible's INI parser reads it back (it literal_evals each value): bare when it
    stays the same string, else JSON when that is also a Python literal, else Python's repr."""
    if isinstance(value, str) and BARE.match(value):
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    text = json.dumps(value)
    try:
        return text if ast.literal_eval(text) == value else repr(value)
    except (ValueError, SyntaxError):
        return repr(value)


def to_ini(data: dict[str, Any], header: str) -> str:
    top = data["all"]
    lines = [f"# {ln}" for ln in header.splitlines()] + ["", "[all]"]
    for name, hostvars in top["hosts"].items():
        lines.append(" ".join([name] + [f"{k}={shlex.quote(_ini_value(v))}" for k, v in hostvars.items()]))
    lines += ["", "[all:vars]"] + [f"{k}={_ini_value(v)}" for k, v in top.get("vars", {}).items()]
    for group, body in top.get("children", {}).items():
        lines += ["", f"[{group}]"] + list(body.get("hosts", {}))
    return "\n".join(lines) + "\n"


def render(target: Target, fmt: str) -> str:
    import yaml

    data = tree(target)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "ini":
        return to_ini(data, _header(target))
    if fmt == "yaml":
        head = "".join(f"# {ln}\n" for ln in _header(target).splitlines())
        return head + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1 << 16)
    raise CliError(f"unknown format `{fmt}` (one of {', '.join(FORMATS)})")


def plugin_source(target: Target, reservation_given: bool) -> str:
    """The YAML source of the `testbed` inventory plugin for this stack."""
    lines = [
        "# Ansible inventory source: the hosts of a pulumi-testbed stack, read from its Pulumi state",
        "# at each run by the `testbed` inventory plugin (it must be on ANSIBLE_INVENTORY_PLUGINS;",
        "# scripts/env.sh puts it there). Use: ansible -i <this file> all -m ping",
        f"plugin: {PLUGIN_NAME}",
        f"project: {json.dumps(target.cwd)}",
        f"stack: {json.dumps(target.stack)}",
    ]
    if reservation_given:
        lines.append(f"reservation: {json.dumps(target.reservation)}")
    return "\n".join(lines) + "\n"


def plugin_on_path() -> bool:
    paths = os.environ.get("ANSIBLE_INVENTORY_PLUGINS", "")
    return any(os.path.realpath(p) == os.path.realpath(PLUGIN_DIR) for p in paths.split(os.pathsep) if p)


def enable_line() -> str:
    """The shell line that puts the plugin on Ansible's path (keeping the user's directories)."""
    return (
        f"export ANSIBLE_INVENTORY_PLUGINS={shlex.quote(PLUGIN_DIR)}"
        ":${ANSIBLE_INVENTORY_PLUGINS:-$HOME/.ansible/plugins/inventory:/usr/share/ansible/plugins/inventory}"
    )


def write_plugin_file(target: Target, path: str, reservation_given: bool) -> str:
    """Write the plugin source to `path`; returns the hint shown to the user."""
    if not os.path.basename(path).endswith(PLUGIN_SUFFIXES):
        raise CliError(f"the plugin file name must end with {' or '.join(PLUGIN_SUFFIXES)} (e.g. {target.stack}.testbed.yml), got {path}")
    try:
        with open(path, "w") as f:
            f.write(plugin_source(target, reservation_given))
    except OSError as err:
        raise CliError(f"could not write {path}: {err.strerror or err}") from None
    hint = f"wrote {path}: use `ansible -i {shlex.quote(path)} all -m ping`"
    if not plugin_on_path():
        hint += f" after enabling the plugin: {enable_line()}"
    return hint
