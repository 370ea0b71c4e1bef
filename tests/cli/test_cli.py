"""The `testbed` CLI end to end: a live stack, the real engine, real sshd hosts, real Ansible."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import time

import yaml

from .conftest import TESTBED

HOSTS = {"server-1", "client-1"}


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


def ping_ok(proc) -> set[str]:
    """Hosts that answered `ansible … -m ping`."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.split(" | ")[0] for line in proc.stdout.splitlines() if " | SUCCESS" in line}


def test_inventory_drives_plain_ansible(live):
    out = live.testbed("inventory")
    assert out.returncode == 0, out.stderr
    assert "PRIVATE KEY" not in out.stdout and "PRIVATE KEY" not in out.stderr
    data = yaml.safe_load(out.stdout)["all"]
    assert set(data["hosts"]) == HOSTS
    assert {g: set(b["hosts"]) for g, b in data["children"].items()} == {"server": {"server-1"}, "client": {"client-1"}}
    key = data["vars"]["ansible_ssh_private_key_file"]
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
    assert key.startswith(live.cache) and "PRIVATE KEY" in open(key).read()
    path = live.work / "inventory.yml"
    path.write_text(out.stdout)
    assert ping_ok(live.tool("ansible", "-i", str(path), "all", "-m", "ping")) == HOSTS
    one = live.tool("ansible", "-i", str(path), "server", "-m", "command", "-a", "hostname")
    assert one.returncode == 0 and "server-1 | CHANGED | rc=0 >>\nserver-1" in one.stdout, one.stdout + one.stderr


def test_ini_and_json_inventories_read_like_the_yaml_one(live):
    listed = {}
    for fmt, suffix in (("yaml", "yml"), ("json", "json"), ("ini", "ini")):
        out = live.testbed("inventory", "--format", fmt)
        assert out.returncode == 0, out.stderr
        path = live.work / f"inventory.{suffix}"
        path.write_text(out.stdout)
        inv = live.tool("ansible-inventory", "-i", str(path), "--list")
        assert inv.returncode == 0, inv.stderr
        listed[fmt] = json.loads(inv.stdout)
    assert listed["json"] == listed["yaml"]
    assert listed["ini"]["_meta"]["hostvars"] == listed["yaml"]["_meta"]["hostvars"]
    assert ping_ok(live.tool("ansible", "-i", str(live.work / "inventory.ini"), "all", "-m", "ping")) == HOSTS


PLAYBOOK = """\
- hosts: server
  gather_facts: false
  tasks:
    - command: hostname
      register: hn
    - debug: {msg: "server says {{ hn.stdout }}"}
- hosts: all
  gather_facts: false
  tasks:
    - copy: {content: "{{ inventory_hostname }}\\n", dest: /root/testbed-cli-mark}
    - command: cat /root/testbed-cli-mark
      register: mark
      failed_when: mark.stdout != inventory_hostname
"""


def test_inventory_plugin_with_ansible_and_ansible_playbook(live):
    source = live.stack.dir / "dev.testbed.yml"
    out = live.testbed("inventory", "--plugin-file", str(source))
    assert out.returncode == 0 and "ansible -i" in out.stderr, out.stderr
    assert yaml.safe_load(source.read_text()) == {"plugin": "testbed", "project": str(live.stack.dir), "stack": "dev"}
    # from the project directory and from elsewhere (the file names the project)
    assert ping_ok(live.tool("ansible", "-i", "dev.testbed.yml", "all", "-m", "ping")) == HOSTS
    graph = live.tool("ansible-inventory", "-i", str(source), "--graph", cwd=live.work)
    assert "@server:" in graph.stdout and "--server-1" in graph.stdout and "--client-1" in graph.stdout, graph.stdout
    book = live.work / "play.yml"
    book.write_text(PLAYBOOK)
    play = live.tool("ansible-playbook", "-i", str(source), str(book), cwd=live.work)
    assert play.returncode == 0, play.stdout + play.stderr
    assert "server says server-1" in play.stdout
    recap = play.stdout.split("PLAY RECAP", 1)[1]
    for host in HOSTS:
        assert re.search(rf"^{host}\s+: ok=\d+ .*unreachable=0\s+failed=0 ", recap, re.M), recap


def test_run_prints_per_host_results(live):
    out = live.testbed("run", "all", "--", "hostname")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for host in HOSTS:
        k = next(i for i, ln in enumerate(lines) if ln.startswith(f"{host} | ok | rc=0 | "))
        assert lines[k + 1] == host
    as_json = live.testbed("run", "--json", "client", "--", "echo", "hi", "&&", "hostname")
    assert as_json.returncode == 0, as_json.stderr
    [result] = json.loads(as_json.stdout)
    assert (result["host"], result["rc"], result["stdout"], result["status"]) == ("client-1", 0, "hi\nclient-1", "ok")


def test_run_a_failing_command_exits_non_zero(live):
    out = live.testbed("run", "all", "--", 'echo out-$(hostname); echo oops-$(hostname) >&2; [ "$(hostname)" = server-1 ] || exit 3')
    assert out.returncode == 1, out.stdout + out.stderr
    assert "server-1 | ok | rc=0 | " in out.stdout and "client-1 | failed | rc=3 | " in out.stdout
    assert "out-client-1\nstderr: oops-client-1" in out.stdout
    assert "1 of 2 host(s) did not succeed: client-1 (failed, rc=3)" in out.stderr
    no_traceback(out)


def test_ssh_runs_a_command_on_one_host(live):
    out = live.testbed("ssh", "server-1", "--", "hostname")
    assert (out.returncode, out.stdout) == (0, "server-1\n"), out.stderr
    by_role = live.testbed("ssh", "client", "--", "hostname; exit 7")  # a role with one host; ssh's exit status
    assert (by_role.returncode, by_role.stdout) == (7, "client-1\n"), by_role.stderr


def test_bad_input_is_one_clear_error(live):
    cases = [
        (("run", "--stack", "nope", "all", "--", "true"), "no stack `nope`"),
        (("run", "nope", "--", "true"), "unknown role or host `nope` (roles: client, server; hosts: server-1, client-1)"),
        (("run", "web*", "--", "true"), "`web*` matches no host"),
        (("ssh", "all", "--", "true"), "`all` matches 2 hosts (server-1, client-1): name one"),
        (("inventory", "--cwd", str(live.work)), "no Pulumi project in"),
        (("inventory", "--plugin-file", str(live.work / "x.yml")), "must end with testbed.yml"),
    ]
    for args, message in cases:
        out = live.testbed(*args)
        assert out.returncode == 2 and out.stderr.startswith("testbed: error: ") and message in out.stderr, (args, out.stderr)
        assert out.stdout == ""
        no_traceback(out)
    # a stack without a reservation (never `up`); a wrong passphrase
    live.stack.run("stack", "init", "empty", "--no-select")
    out = live.testbed("inventory", "--stack", "empty")
    assert out.returncode == 2 and "stack `empty` has no testbed:index:Reservation" in out.stderr, out.stderr
    out = live.testbed("inventory", env={**live.env, "PULUMI_CONFIG_PASSPHRASE": "wrong"})
    assert out.returncode == 2 and "incorrect passphrase" in out.stderr and "PRIVATE KEY" not in out.stderr, out.stderr
    no_traceback(out)


def test_ctrl_c_stops_the_remote_commands(live):
    sleep = f"sleep {300 + random.random():.6f}"  # a unique command line, visible from the root pid namespace
    proc = subprocess.Popen(
        [str(TESTBED), "run", "all", "--", sleep],
        cwd=live.stack.dir,
        env=live.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while running(sleep) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "the command never started on both hosts"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends (ssh clients run in sessions of their own)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert out.count("| timeout | rc=-1 |") == 2 and "the remote command was stopped" in out, out
    assert running(sleep) == 0
    assert "Traceback" not in out + err, err


def running(cmdline: str) -> int:
    out = subprocess.run(["pgrep", "-c", "-f", f"^{cmdline}$"], capture_output=True, text=True, check=False)
    return int(out.stdout.strip() or 0)
