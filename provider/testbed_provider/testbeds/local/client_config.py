"""What an SSH client needs, written into the run dir: key, known_hosts and an ssh_config.

`ssh -F <runDir>/ssh_config <host> …` works as is: every connection is tunnelled by the
ProxyCommand from the root namespace into the switch namespace, so the controller never needs
an address or route of its own.
"""

from __future__ import annotations

import os

from ...hosts.keys import known_hosts_line


def proxy_command(switch: str) -> str:
    return f"ip netns exec {switch} nc %h %p"


def _quote(path: str) -> str:
    return '"' + path.replace('"', '\\"') + '"'


def ssh_config_text(run_dir: str, switch: str, hosts: list[tuple[str, str]]) -> str:
    lines = ["# Written by pulumi-testbed: ssh -F <this file> <host> …", ""]
    for name, address in hosts:
        lines += [f"Host {name}", f"  HostName {address}", ""]
    lines += [
        "Host *",
        "  User root",
        "  Port 22",
        f"  IdentityFile {_quote(os.path.join(run_dir, 'id'))}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {_quote(os.path.join(run_dir, 'known_hosts'))}",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        f"  ProxyCommand {proxy_command(switch)}",
    ]
    return "\n".join(lines) + "\n"


def known_hosts_text(hosts: list[tuple[str, str, str]]) -> str:
    """From (name, address, public host key) triples."""
    return "".join(known_hosts_line(n, a, k) + "\n" for n, a, k in hosts)
