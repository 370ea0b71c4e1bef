"""One live 2-host stack (tests/e2e/projects/nodes, stack `dev`, local backend) for the module;
the `testbed` CLI runs against it as a user runs it: the installed entry point, in a subprocess.

Everything the CLI and Ansible leave is private to the run and removed at the end: the CLI's
SSH files (PULUMI_TESTBED_CACHE), Ansible's ControlMaster sockets (ANSIBLE_SSH_CONTROL_PATH_DIR);
masters still running are told to exit through their sockets, then the stack is destroyed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..e2e.stack import Stack
from ..helpers import IS_ROOT, ROOT, namespaces_of

TESTBED = ROOT / ".venv" / "bin" / "testbed"


def env_sh_value(name: str) -> str:
    """A variable as scripts/env.sh sets it (what a researcher's shell has)."""
    out = subprocess.run(
        ["bash", "-c", f'. "{ROOT}/scripts/env.sh" >/dev/null && printf %s "${name}"'], capture_output=True, text=True, check=True
    )
    return out.stdout


@dataclass
class Live:
    stack: Stack
    env: dict[str, str]
    cache: str
    work: Path  # scratch files of the tests
    reservation_id: str = field(default="")

    def testbed(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(TESTBED), *args], cwd=cwd or self.stack.dir, env=env or self.env, capture_output=True, text=True, timeout=timeout
        )

    def tool(self, *argv: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        """A real Ansible command (ansible, ansible-playbook, ansible-inventory) of the venv."""
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / argv[0]), *argv[1:]],
            cwd=cwd or self.stack.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _exit_masters(*dirs: str) -> None:
    """Stop the SSH ControlMasters whose sockets are in `dirs` (ours only, by socket)."""
    for d in dirs:
        for sock in glob.glob(os.path.join(d, "**", "*"), recursive=True):
            if os.path.exists(sock) and not os.path.isdir(sock) and not os.path.isfile(sock):
                subprocess.run(
                    ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, timeout=10, check=False
                )


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    if not TESTBED.exists():
        pytest.fail(f"{TESTBED} is missing: run scripts/setup-venv.sh (make setup) to install the entry point")
    stack = Stack(tmp_path_factory.mktemp("cli"), example="nodes", stack="dev")
    cache = tempfile.mkdtemp(prefix="tbcli-")  # short: SSH control socket paths are limited
    env = {
        **stack.env,
        "PULUMI_TESTBED_CACHE": cache,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(cache, "cp"),
        "ANSIBLE_INVENTORY_PLUGINS": env_sh_value("ANSIBLE_INVENTORY_PLUGINS"),
        "ANSIBLE_HOME": os.path.join(cache, "ansible-home"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }
    live = Live(stack, env, cache, tmp_path_factory.mktemp("cli-work"))
    try:
        stack.up()
        live.reservation_id = stack.reservation()["id"]
        yield live
    finally:
        _exit_masters(cache)
        stack.destroy()
        shutil.rmtree(cache, ignore_errors=True)
        if live.reservation_id:
            assert not namespaces_of(live.reservation_id), "the stack's namespaces outlived destroy"
