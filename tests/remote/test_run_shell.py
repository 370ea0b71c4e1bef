"""run_shell / stop_background on real local hosts: selection, results, environment, quoting,
timeouts, Cancel, unreachable hosts, background commands, privacy, and ssh/Ansible parity."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import time
from datetime import datetime

import pytest

from testbed_provider.hosts.netns import namespace_id, pids_in
from testbed_provider.remote import PatternError, RemoteError, materialize, run_shell, stop_background
from testbed_provider.remote.ssh_engine import master_alive
from testbed_provider.resources.command import result_output

from .conftest import masters_running

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]


def by_host(results):
    return {r.host: r for r in results}


def summary(results):
    return [(r.host, r.rc, r.stdout, r.stderr, r.status) for r in results]


async def test_hostname_on_all_returns_each_hosts_name(bed):
    results = await run_shell(bed.inventory, "all", "hostname")
    assert [r.host for r in results] == bed.names == ["server-1", "client-1", "client-2"]
    for r in results:
        assert (r.status, r.rc, r.stdout, r.stderr) == ("ok", 0, r.host, "")
        assert r.started_at.endswith("Z") and datetime.fromisoformat(r.started_at.replace("Z", "+00:00"))
        assert 0 < r.duration_s < 30
        assert result_output(r)["startedAt"] == r.started_at


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("server", ["server-1"]),
        ("client:!server", ["client-1", "client-2"]),
        ("client-2", ["client-2"]),
        ("client:server", ["server-1", "client-1", "client-2"]),  # inventory order, whatever the pattern order
        ("client*", ["client-1", "client-2"]),
        ("all:!client-1", ["server-1", "client-2"]),
    ],
)
async def test_patterns_select_the_right_hosts(bed, pattern, expected):
    results = await run_shell(bed.inventory, pattern, "hostname")
    assert [(r.host, r.stdout) for r in results] == [(n, n) for n in expected]


async def test_unknown_role_and_empty_selection_raise_pattern_error(bed):
    with pytest.raises(PatternError, match=r"unknown role or host `web` \(roles: client, server; hosts: server-1, client-1, client-2\)"):
        await run_shell(bed.inventory, "server:web", "hostname")
    with pytest.raises(PatternError, match="`server:&client` matches no host"):
        await run_shell(bed.inventory, "server:&client", "hostname")


async def test_bad_requests_raise_remote_error_before_running(bed):
    with pytest.raises(RemoteError, match="engine must be one of"):
        await run_shell(bed.inventory, "all", "true", engine="fabric")
    with pytest.raises(RemoteError, match="not a valid variable name"):
        await run_shell(bed.inventory, "all", "true", environment={"A-B": "x"})
    with pytest.raises(RemoteError, match="background tag"):
        await run_shell(bed.inventory, "all", "true", background="../x")
    broken = {**bed.inventory, "ssh": {**bed.inventory["ssh"], "privateKey": ""}}
    with pytest.raises(RemoteError, match="privateKey") as err:
        await run_shell(broken, "all", "true")
    assert "PRIVATE KEY" not in str(err.value)


async def test_non_zero_exit_is_reported_per_host_with_stderr(bed):
    results = await run_shell(
        bed.inventory, "all", 'echo "out-$(hostname)"; echo "err-$(hostname)" >&2; [ "$(hostname)" = server-1 ] || exit 3'
    )
    r = by_host(results)
    assert (r["server-1"].status, r["server-1"].rc, r["server-1"].stderr) == ("ok", 0, "err-server-1")
    for name in ("client-1", "client-2"):
        assert (r[name].status, r[name].rc, r[name].stdout, r[name].stderr) == ("failed", 3, f"out-{name}", f"err-{name}")


async def test_exit_255_of_the_command_is_a_failure_not_unreachable(bed):
    results = await run_shell(bed.inventory, "server", "echo bye >&2; exit 255")
    assert summary(results) == [("server-1", 255, "", "bye", "failed")]


async def test_environment_reaches_the_command(bed):
    env = {"GREETING": "hello world", "TRICKY": 'it\'s "$HOME" `x` {{ y }}\nline2', "EMPTY": ""}
    results = await run_shell(bed.inventory, "client", 'printf "%s|%s|%s" "$GREETING" "$TRICKY" "${EMPTY-unset}"', environment=env)
    assert {r.stdout for r in results} == {'hello world|it\'s "$HOME" `x` {{ y }}\nline2|'}


async def test_quoting_survives(bed):
    results = await run_shell(bed.inventory, "server", "printf '%s\\n' \"a b\" '$HOME'")
    assert results[0].stdout == "a b\n$HOME"


async def test_trailing_newlines_are_stripped_like_ansible(bed):
    results = await run_shell(bed.inventory, "server", "printf '\\n lead\\n\\nmid\\n\\n\\n'; printf 'e\\r\\n\\n' >&2")
    assert (results[0].stdout, results[0].stderr) == ("\n lead\n\nmid", "e")


async def _process_state(bed, host: str, pid: str) -> str:
    """`gone`, `zombie` or `alive`, asked on the host itself."""
    check = f'if [ -r /proc/{pid}/stat ]; then s=$(cut -d" " -f3 /proc/{pid}/stat); [ "$s" = Z ] && echo zombie || echo alive; else echo gone; fi'
    return (await run_shell(bed.inventory, host, check))[0].stdout


async def test_timeout_kills_the_remote_command_and_reports_it(bed):
    t0 = time.monotonic()
    results = await run_shell(
        bed.inventory, "client", 'echo $$ > ~/timeout.pid; [ "$(hostname)" = client-1 ] && sleep 60; echo done', timeout=1.5
    )
    elapsed = time.monotonic() - t0
    r = by_host(results)
    assert (r["client-2"].status, r["client-2"].stdout) == ("ok", "done")
    assert (r["client-1"].status, r["client-1"].rc) == ("timeout", -1)
    assert "timed out after 1.5 s" in r["client-1"].stderr and "remote command was stopped" in r["client-1"].stderr
    assert elapsed < 8
    pid = (await run_shell(bed.inventory, "client-1", "cat ~/timeout.pid"))[0].stdout
    assert await _process_state(bed, "client-1", pid) in ("gone", "zombie")


def ssh_clients_to(hosts: list[str]) -> list[str]:
    """The step clients (`ssh … -T <host> …`) to `hosts` running on this machine."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[:1] == [b"ssh"] and any(argv[i] == b"-T" and argv[i + 1].decode() in hosts for i in range(len(argv) - 1)):
            found.append(pid)
    return found


async def test_cancel_stops_promptly_and_reports_what_finished(bed):
    # Cancel comes once the clients are done (their marker written, their ssh exited) while the
    # server's command runs: not after a fixed second that a busy machine spends connecting.
    # /var/tmp is the machine's own on every host (their /tmp is private).
    clients = ["client-1", "client-2"]
    marker = f"/var/tmp/tb-test-cancel-{os.getpid()}-{time.monotonic_ns()}"
    cancelled = asyncio.Event()

    async def cancel_once_the_clients_are_done() -> float:
        while not all(os.path.exists(f"{marker}-{c}") for c in clients) or ssh_clients_to(clients):
            await asyncio.sleep(0.02)
        cancelled.set()
        return time.monotonic()

    watcher = asyncio.ensure_future(cancel_once_the_clients_are_done())
    try:
        results = await run_shell(
            bed.inventory,
            "all",
            f'[ "$(hostname)" = server-1 ] && exec sleep 60; hostname; touch {marker}-"$(hostname)"',
            cancelled=cancelled,
        )
        assert watcher.done(), "run_shell returned before Cancel"
        assert time.monotonic() - watcher.result() < 10  # promptly after Cancel
    finally:
        watcher.cancel()
        for c in clients:
            if os.path.exists(f"{marker}-{c}"):
                os.unlink(f"{marker}-{c}")
    r = by_host(results)
    assert [(r[n].status, r[n].stdout) for n in ("client-1", "client-2")] == [("ok", "client-1"), ("ok", "client-2")]
    assert (r["server-1"].status, r["server-1"].rc) == ("timeout", -1) and "cancelled" in r["server-1"].stderr
    left = await run_shell(bed.inventory, "server", "ps -eo args | grep -c '^sleep 6[0]$' || true")
    assert left[0].stdout == "0"


async def test_cancel_before_start_runs_nothing(bed):
    cancelled = asyncio.Event()
    cancelled.set()
    with pytest.raises(RemoteError, match="cancelled before"):
        await run_shell(bed.inventory, "all", "touch ~/never", cancelled=cancelled)


async def test_background_start_and_stop(bed):
    tag = "bg-test"
    results = await run_shell(bed.inventory, "client", "echo started; exec sleep 300", background=tag)
    assert [(r.host, r.status, r.rc) for r in results] == [("client-1", "ok", 0), ("client-2", "ok", 0)]
    assert all("process group" in r.stdout for r in results)
    pids = {r.host: r.stdout for r in await run_shell(bed.inventory, "client", f"cat ~/.testbed/bg/{tag}.pid")}
    assert all(p.isdigit() for p in pids.values())
    for host, pid in pids.items():
        assert await _process_state(bed, host, pid) == "alive"
    # it outlived the step; its output goes to the log
    logs = await run_shell(bed.inventory, "client", f"cat ~/.testbed/bg/{tag}.log")
    assert {r.stdout for r in logs} == {"started"}
    # starting it again while it runs is refused
    again = await run_shell(bed.inventory, "client-1", "sleep 300", background=tag)
    assert again[0].status == "failed" and "already running" in again[0].stderr

    stopped = await stop_background(bed.inventory, "client", tag)
    assert [(r.status, r.rc) for r in stopped] == [("ok", 0), ("ok", 0)]
    assert all("stopped process group" in r.stdout for r in stopped)
    for host, pid in pids.items():
        assert await _process_state(bed, host, pid) in ("gone", "zombie")
    files = await run_shell(bed.inventory, "client", f"ls ~/.testbed/bg/ | grep -c '^{tag}.pid$' || true")
    assert {r.stdout for r in files} == {"0"}
    # stopping again (or where it never ran) succeeds
    again = await stop_background(bed.inventory, "all", tag)
    assert [r.status for r in again] == ["ok"] * 3 and all("not running" in r.stdout for r in again)


async def test_background_stop_kills_the_whole_group_even_if_term_is_ignored(bed):
    tag = "bg-stubborn"
    await run_shell(bed.inventory, "server", "trap '' TERM; sleep 300 & sleep 300 & wait", background=tag)
    pid = (await run_shell(bed.inventory, "server", f"cat ~/.testbed/bg/{tag}.pid"))[0].stdout
    t0 = time.monotonic()
    stopped = await stop_background(bed.inventory, "server", tag)
    assert stopped[0].status == "ok" and 1.5 < time.monotonic() - t0 < 10
    members = await run_shell(bed.inventory, "server", f"ps -eo pgid=,stat= | awk '$1 == {pid} && $2 !~ /^Z/' | wc -l")
    assert members[0].stdout == "0"


async def test_background_failure_at_start_reports_rc_and_log(bed):
    results = await run_shell(bed.inventory, "server", "echo about to fail; no-such-command-xyz", background="bg-fails")
    r = results[0]
    assert (r.status, r.rc) == ("failed", 127)
    assert "about to fail" in r.stderr and "no-such-command-xyz: not found" in r.stderr


async def test_progress_reports_counts_and_never_the_environment(bed):
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    await run_shell(bed.inventory, "all", "echo $SECRET_VALUE", environment={"SECRET_VALUE": "s3cr3t-v4lue"}, progress=progress)
    assert lines[0].startswith("running on 3 hosts") and lines[-1] == "3/3 hosts done"
    assert not any("s3cr3t" in line or "SECRET" in line for line in lines)


async def test_become_as_root_is_a_no_op_on_both_engines(bed):
    for engine in ("ssh", "ansible"):
        results = await run_shell(bed.inventory, "server", "id -un", become=True, engine=engine)
        assert summary(results) == [("server-1", 0, "root", "", "ok")], engine


async def test_connections_are_reused_and_the_workspace_is_private(bed):
    await run_shell(bed.inventory, "all", "true")
    ws = await materialize.workspace(bed.inventory)
    assert all([await master_alive(ws, name) for name in bed.names])
    assert len(masters_running()) >= 3
    assert stat.S_IMODE(os.stat(ws.dir).st_mode) == 0o700 and stat.S_IMODE(os.stat(ws.key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(ws.dir)).st_mode) == 0o700
    with open(ws.ssh_config) as f:
        config = f.read()
    assert "PRIVATE KEY" not in config and "ControlPath" in config and "StrictHostKeyChecking yes" in config
    # while a step runs, neither the key nor the command's environment is in any argv
    key_body = bed.inventory["ssh"]["privateKey"].splitlines()[1]
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_shell(bed.inventory, "all", "sleep 300", environment={"TOKEN": "tok-123456789"}, cancelled=stop))

    def argvs() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append(f.read().decode(errors="replace").replace("\0", " "))
            except OSError:
                pass
        return found

    deadline = time.monotonic() + 60  # looked at while every host runs it (not after a guessed pause)
    while (seen := argvs()) and sum("sleep 300" in a for a in seen) < len(bed.names):
        assert time.monotonic() < deadline and not task.done(), "the step never ran on every host"
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert not any(key_body in a or "tok-123456789" in a for a in seen)


# Commands whose results must not depend on the engine: success, failure with stderr, the
# environment, multi-line output, trailing (and leading) newlines, unicode, exit 255, stdin.
PARITY = [
    "hostname",
    'echo "to stdout"; echo "to stderr: $(hostname)" >&2; exit 7',
    'printf "%s\\n" "$GREETING" "$QUOTED"',
    "printf 'line 1\\nline 2\\n\\nline 4\\n'",
    "printf '\\nleading\\n\\n\\n'; printf 'err\\n\\n' >&2",
    "echo 'héllo wörld ✓'",
    "exit 255",
    "cat; echo read-stdin-rc=$?",
    "echo $0 $# ${LC_CTYPE-} ${LC_ALL-unset}",
    "cd /; pwd; cd; pwd",
]


async def test_parity_ssh_and_ansible_engines_give_identical_results(bed):
    env = {"GREETING": "hi there", "QUOTED": 'it\'s a "test" $HOME {{ x }}'}
    for command in PARITY:
        fast = await run_shell(bed.inventory, "all", command, environment=env, engine="ssh")
        slow = await run_shell(bed.inventory, "all", command, environment=env, engine="ansible")
        assert summary(fast) == summary(slow), command
        assert [r.host for r in fast] == bed.names


async def test_unreachable_host_is_reported_while_the_others_succeed(own_bed):
    await run_shell(own_bed.inventory, "all", "true")  # open the connections first
    # crash client-1: everything in its namespace (sshd and the sessions) goes
    namespace = own_bed.state["local"]["hosts"]["client-1"]["namespace"]
    for pid in pids_in([namespace_id(namespace)]):
        os.kill(pid, signal.SIGKILL)
    for engine in ("ssh", "ansible", "auto"):
        r = by_host(await run_shell(own_bed.inventory, "all", "hostname", engine=engine))
        assert [(r[n].status, r[n].stdout) for n in ("server-1", "client-2")] == [("ok", "server-1"), ("ok", "client-2")], engine
        assert (r["client-1"].status, r["client-1"].rc) == ("unreachable", -1), engine
        assert r["client-1"].stderr, engine
    # stop_background reports it too, never drops it
    stopped = by_host(await stop_background(own_bed.inventory, "all", "whatever"))
    assert stopped["client-1"].status == "unreachable" and stopped["server-1"].status == "ok"


async def test_close_leaves_no_control_master_running(own_bed):
    await run_shell(own_bed.inventory, "all", "true")
    control_dir = (await materialize.workspace(own_bed.inventory)).control_dir
    assert len(masters_running(control_dir)) == 3
    await materialize.close(own_bed.inventory)
    deadline = time.monotonic() + 30  # until they have exited, however busy the machine (was 2 s)
    while masters_running(control_dir) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert masters_running(control_dir) == []
    results = await run_shell(own_bed.inventory, "all", "hostname")  # reconnects
    assert [r.stdout for r in results] == own_bed.names


async def test_concurrent_steps_on_cold_connections_do_not_race_for_the_master(own_bed):
    """Independent Commands run at once; the loser of a ControlMaster race would get ssh's
    "ControlSocket … already exists" warning in its stderr. Every run must be clean."""
    await materialize.close(own_bed.inventory)
    runs = await asyncio.gather(
        *(run_shell(own_bed.inventory, "all", "echo out; echo err >&2") for _ in range(6)),
        run_shell(own_bed.inventory, "all", "echo out; echo err >&2", engine="ansible"),
    )
    for results in runs:
        assert [(r.status, r.stdout, r.stderr) for r in results] == [("ok", "out", "err")] * 3
    control_dir = (await materialize.workspace(own_bed.inventory)).control_dir
    assert len(masters_running(control_dir)) == 3, "one master per host, shared by all the steps"
