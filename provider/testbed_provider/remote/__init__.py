"""Remote execution: run steps on a reservation's hosts from its inventory alone.

Every step type (Command now; Ansible modules, playbooks, fetch later) goes through here.
`run_shell` runs one shell command on the hosts matching an Ansible pattern and returns one
`HostResult` per host; `match_hosts` resolves a pattern exactly as Ansible does.
"""

from .api import HostResult, PatternError, RemoteError, match_hosts, run_shell, stop_background

__all__ = ["HostResult", "PatternError", "RemoteError", "match_hosts", "run_shell", "stop_background"]
