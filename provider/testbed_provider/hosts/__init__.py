"""Hosts made of Linux namespaces: the toolkit the local testbed and the Grid'5000 emulator share.

A host here is a network namespace wired to bridges in a switch namespace, with a private view
of a few directories and its own sshd; clients reach it through `ip netns exec <switch> nc`.
Both users of this toolkit build exactly that, with their own names and address plans:
`testbeds.local` (one reservation's hosts) and `g5k_emulator.hosts` (the nodes of running jobs).

- `netns`: namespaces, veth pairs onto bridges (`Link`, `add_links`), teardown by pid;
- `sshd`: a host's private directories and its sshd (started, identified, its pid file);
- `keys`: ed25519 keys by ssh-keygen, known_hosts lines;
- `readiness`: waiting until every host's sshd answers, probed from the switch namespace;
- `commands`: running `ip`, `ssh-keygen`, … (an error names the command and its stderr).

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2, OpenSSH, util-linux. Files, processes
and deadlines go through `testbed_provider.common`.
"""
