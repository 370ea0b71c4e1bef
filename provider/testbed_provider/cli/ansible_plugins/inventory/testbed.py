"""Ansible inventory plugin `testbed`: the hosts of a live pulumi-testbed stack.

Loaded by Ansible from this directory (ANSIBLE_INVENTORY_PLUGINS; scripts/env.sh sets it),
through the `auto` plugin, for a YAML source file whose name ends with `testbed.yml`:

    plugin: testbed
    project: /path/to/the/pulumi/project   # default: the source file's directory
    stack: dev                             # default: the project's selected stack
    reservation: nodes                     # only when the stack has several

`testbed inventory --plugin-file dev.testbed.yml` writes one. Each Ansible run reads the stack
anew (Automation API, secrets revealed in memory), so the inventory follows `pulumi up`; the
groups, variables and SSH files are exactly those of `testbed inventory`.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = r"""
name: testbed
short_description: hosts of a pulumi-testbed stack, read from its Pulumi state
description:
  - Groups are the reservation's roles; connection settings (key file, pinned known_hosts,
    ProxyCommand) are the provider's own, from the testbed CLI's private cache.
  - The source file name must end with C(testbed.yml) or C(testbed.yaml).
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: ['testbed']
  project:
    description: The Pulumi project directory, relative to the source file's directory.
    type: str
    default: '.'
  stack:
    description: The stack; the project's selected stack when omitted.
    type: str
  reservation:
    description: The Reservation resource's name, when the stack has several.
    type: str
"""

SUFFIXES = ("testbed.yml", "testbed.yaml")


class InventoryModule(BaseInventoryPlugin):
    NAME = "testbed"

    def verify_file(self, path):
        return super().verify_file(path) and os.path.basename(path).endswith(SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        try:
            from testbed_provider.cli import inventory as cli_inventory
            from testbed_provider.cli.stacks import CliError, load
        except ImportError as err:
            raise AnsibleParserError(
                f"the testbed inventory plugin needs the testbed_provider package in Ansible's "
                f"Python (use the ansible of pulumi-testbed's .venv): {err}"
            ) from None
        project = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(self.get_option("project")))
        try:
            target = load(project, self.get_option("stack"), self.get_option("reservation"))
            data = cli_inventory.tree(target)["all"]
        except CliError as err:
            raise AnsibleParserError(f"testbed: {err}") from None
        for name, hostvars in data["hosts"].items():
            self.inventory.add_host(name)
            for key, value in hostvars.items():
                self.inventory.set_variable(name, key, value)
        for key, value in data.get("vars", {}).items():
            self.inventory.set_variable("all", key, value)
        for group, body in data.get("children", {}).items():
            self.inventory.add_group(group)
            for name in body.get("hosts", {}):
                self.inventory.add_host(name, group=group)
