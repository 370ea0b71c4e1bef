"""`testbed ssh` with the CLI cache where users have it: the default location under $HOME (no
PULUMI_TESTBED_CACHE, no XDG_CACHE_HOME), which is always too long a path for OpenSSH's
ControlMaster sockets, and caches right at the length limit and just over it.

The other CLI tests use a short PULUMI_TESTBED_CACHE, which hid issue 10's first defect.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile

import pytest

SUN_PATH_SIZE = 108  # Linux's sockaddr_un.sun_path, NUL included
CONTROL_DIR_MAX = SUN_PATH_SIZE - 1 - len(".") - 16 - 40 - len("/")  # `<dir>/<%C>.<16 random>` must fit
CLI = "/.cache/pulumi-testbed/cli"  # under $HOME
CTL = len("/ctl-") + 16  # a control directory's name, after its parent


def control_dir(ws_glob: str) -> str:
    """The socket directory the ssh_config of the (one) workspace names."""
    [config] = glob.glob(ws_glob)
    return re.search(r'ControlPath "(.*)/%C"', open(config).read()).group(1)


def exit_masters(directory: str) -> None:
    for sock in glob.glob(os.path.join(directory, "*")):
        subprocess.run(
            ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "x"], capture_output=True, timeout=10, check=False
        )


def old_rule_breaks(cache_cli: str) -> bool:
    """Before the fix the sockets went to `<cache>/cli/ctl-…/<40 hex>`, bound as `….<16 random>`."""
    return len(cache_cli) + CTL + 1 + 40 + 17 > SUN_PATH_SIZE - 1


@pytest.fixture
def scratch():
    made: list[str] = []
    yield made
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def run_ssh(live, env: dict[str, str], ws_glob: str, scratch: list[str]) -> str:
    out = live.testbed("ssh", "server-1", "--", "hostname", env=env)
    assert out.returncode == 0 and out.stdout.strip() == "server-1", out.stdout + out.stderr
    where = control_dir(ws_glob)
    scratch.insert(0, where)  # removed (first) at the end, its master gone
    sockets = glob.glob(os.path.join(where, "*"))
    assert len(sockets) == 1 and len(os.path.basename(sockets[0])) == 40, sockets  # the master, named %C, persists
    again = live.testbed("ssh", "server", "--", "hostname", env=env)  # through the master
    assert again.returncode == 0 and again.stdout.strip() == "server-1", again.stderr
    exit_masters(where)
    return where


@pytest.mark.parametrize("home", ["short", "long"])
def test_ssh_with_the_default_cache_location(live, scratch, home):
    base = tempfile.mkdtemp(prefix="h", dir="/tmp")  # "short": /tmp/hXXXXXXXX, as short as a private temporary home gets
    scratch.append(base)
    home_dir = base if home == "short" else os.path.join(base, "a-researcher-with-a-long-home-directory", "x" * 120)
    os.makedirs(home_dir, exist_ok=True)
    assert len(home_dir) >= len("/root") and old_rule_breaks(home_dir + CLI)  # stricter than root's home
    env = {k: v for k, v in live.env.items() if k not in ("PULUMI_TESTBED_CACHE", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR")}
    env["HOME"] = home_dir
    where = run_ssh(live, env, home_dir + CLI + "/ws-*/ssh_config", scratch)
    # key and known_hosts stay in the cache; the sockets go to the short private runtime directory
    assert glob.glob(home_dir + CLI + "/ws-*/id")
    assert os.path.dirname(where) == f"/tmp/tb-ssh-{os.geteuid()}"
    assert oct(os.stat(os.path.dirname(where)).st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("over", [0, 1])
def test_ssh_with_a_cache_at_the_socket_length_limit(live, scratch, over):
    """At the limit the sockets stay beside the key (OpenSSH's temporary name just fits); one
    byte over, they move to the runtime directory."""
    base = tempfile.mkdtemp(prefix="tbe", dir="/tmp")
    scratch.append(base)
    cache = base + "/" + "c" * (CONTROL_DIR_MAX + over - CTL - len("/cli") - len(base) - 1)
    runtime = tempfile.mkdtemp(prefix="tbr", dir="/tmp")
    scratch.append(runtime)
    env = {**live.env, "PULUMI_TESTBED_CACHE": cache, "XDG_RUNTIME_DIR": runtime}
    assert len(cache + "/cli") + CTL == CONTROL_DIR_MAX + over
    where = run_ssh(live, env, cache + "/cli/ws-*/ssh_config", scratch)
    assert os.path.dirname(where) == (cache + "/cli" if not over else runtime + "/tb-ssh")
