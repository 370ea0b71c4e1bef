"""A Play of 10 tasks on N local hosts (default 20): the provider against plain `ansible-playbook`.

All on one reservation, in one run; every figure is the median of --runs repetitions (≥ 3).
The same 10 tasks (ansible-core builtin modules that work offline: file, copy with content,
template from a local file, lineinfile, command with register, shell with `creates`, stat,
set_fact, debug, file link; everything under the hosts' private /tmp) run as:

  Play, cold     a `testbed:index:Play` (on: all) over gRPC in a fresh plugin process, as the
                 engine drives it: Check + Create (ansible-core's loader imported for Check,
                 connections opened; on fresh hosts 6 of the 10 tasks change something)
  Play, warm     then, in the same plugin, Check + Diff + Update with a new `triggers` value:
                 the idempotent re-run (0 changed) over the connections the Create left open
  plain, first   `ansible-playbook -i <inventory> -f N play.yml` with the same tasks in a YAML
                 file, a plain configuration (see `PLAIN_CONFIG` below, printed by the bench),
                 on hosts in the same state as for the cold Play (6 changed per host)
  plain, second  the same command again: ControlPersist masters open, 0 changed

Before each repetition the hosts' /tmp/tb-bench-play is removed and every master (the plugin's
and plain Ansible's) is closed, so both cold figures start from the same state. Ratios: Play
cold / plain first, Play warm / plain second; target ≤ 1.1.

It also prints where the time goes: the whole machine's busy CPU-seconds per run (controller,
hosts and whatever else runs there), plain ansible-playbook's own CPU, and the Play's phases from
the plugin's progress messages (Check, until the first task result, first to last result…).

Run as root from the repository: `python bench/play.py [--hosts 20] [--runs 3]`
(`scripts/bench.sh play`). About 7–8 minutes on a 2-CPU machine with 20 hosts (each figure
is ~30 s of CPU-bound work, see below); fewer hosts go faster.

Figures (2026-11-29; 20 hosts, 3 runs; 2 CPUs; ansible-core 2.19.14; other test suites were
running on the machine at times):
  Play cold (Check + Create, fresh plugin)   28.1 s   (29.2, 27.4, 28.1)   120 changed
  Play warm (Check + Diff + Update)          26.3 s   (28.7, 25.8, 26.3)     0 changed
  plain ansible-playbook -f 20, first run    36.4 s   (38.4, 36.4, 33.6)   120 changed
  plain ansible-playbook, second run         32.4 s   (32.0, 32.4, 33.7)     0 changed
  Play cold / plain first = 0.77, Play warm / plain second = 0.81: target ≤ 1.1 met.
  (another run, busier machine: 32.2 / 30.9 / 41.5 / 35.2 s, ratios 0.78 and 0.88.)

Where the time goes: the machine is CPU-bound (2 CPUs busy for the whole run: ~64–71 CPU-s
per plain run). 8 of the 10 tasks run a module on the host, and copy and template run two
(stat, then copy): 10 module runs per host, 200 per figure, each a fresh python3 that unpacks
the AnsiballZ payload and compiles its module_utils from the zip (~0.16 CPU-s measured on a
host, against 0.015 s for a bare `python3 -c pass`), so ~33 CPU-s on the hosts whatever
runs the play; plain ansible-playbook's own processes take ~17 CPU-s more (set_fact and debug
run on the controller). The Play is faster because its engine runs ansible-playbook with
pipelining (one ssh session per module run, not mkdir + sftp put + chmod + run + rm) and its
ControlMasters, while plain Ansible's default is pipelining off. The provider's own overhead
is small: Check 0.28 s cold (ansible-core's plugin loader; 0.02 s warm), under 0.02 s before
ansible-playbook starts, ~0.1 s after the last result (ansible-playbook's exit, outputs);
ControlMasters + ansible-playbook's start + the first task take 4.0 s cold, 2.7 s warm. The
warm figures are barely below the cold ones: opening 20 connections costs ~1–2 s of ~30.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "provider"))
sys.path.insert(0, str(ROOT))

from testbed_provider.protocol.codec import reveal  # noqa: E402
from testbed_provider.remote import materialize, run_shell  # noqa: E402
from testbed_provider.resources.reservation import outputs_from_state  # noqa: E402
from testbed_provider.testbeds.base import MachineGroup, ReservationSpec  # noqa: E402
from testbed_provider.testbeds.local import LocalTestbed  # noqa: E402

DIR = "/tmp/tb-bench-play"  # per host: the local hosts have a private /tmp
TEMPLATE = """\
# app.conf of {{ inventory_hostname }}, written by bench/play.py
name={{ inventory_hostname }}
address={{ ansible_host }}
peers={{ groups['all'] | length }}
first={{ groups['all'][0] }}
"""
CHANGING = 6  # tasks that change something on a fresh host; none on a re-run


def tasks(template: str) -> list[dict]:
    return [
        {"name": "directory", "ansible.builtin.file": {"path": DIR, "state": "directory", "mode": "0755"}},
        {
            "name": "motd",
            "ansible.builtin.copy": {"dest": f"{DIR}/motd", "content": "Welcome to {{ inventory_hostname }}\n", "mode": "0644"},
        },
        {"name": "app.conf", "ansible.builtin.template": {"src": template, "dest": f"{DIR}/app.conf", "mode": "0644"}},
        {
            "name": "settings",
            "ansible.builtin.lineinfile": {"path": f"{DIR}/settings", "line": "workers=4", "create": True, "mode": "0644"},
        },
        {"name": "hostname", "ansible.builtin.command": {"cmd": "hostname"}, "register": "hn", "changed_when": False},
        {"name": "name file", "ansible.builtin.shell": {"cmd": f"echo {{{{ hn.stdout }}}} > {DIR}/name", "creates": f"{DIR}/name"}},
        {"name": "stat app.conf", "ansible.builtin.stat": {"path": f"{DIR}/app.conf"}, "register": "st"},
        {"name": "facts", "ansible.builtin.set_fact": {"conf_size": "{{ st.stat.size }}", "me": "{{ hn.stdout }}"}},
        {"name": "report", "ansible.builtin.debug": {"msg": "{{ me }}: app.conf is {{ conf_size }} bytes"}},
        {"name": "link", "ansible.builtin.file": {"src": f"{DIR}/motd", "dest": f"{DIR}/motd.link", "state": "link"}},
    ]


# What the baseline runs with: no ansible.cfg anywhere (none in /etc/ansible, ~ or the cwd),
# so Ansible's defaults, plus what a user of the testbed's inventory gets (`testbed inventory`):
PLAIN_CONFIG = (
    "no ansible.cfg (defaults: ssh_args `-C -o ControlMaster=auto -o ControlPersist=60s`, pipelining off, "
    "strategy linear, default stdout callback, host_key_checking on); inventory = the testbed's hosts "
    "(ansible_host/user/port, ansible_python_interpreter=/usr/bin/python3) with ansible_ssh_common_args "
    "`-F <the reservation's ssh_config>` (same key, pinned known_hosts, ProxyCommand); control_path_dir, "
    "ANSIBLE_HOME and local_tmp in a temporary directory (instead of ~/.ansible) so that the bench can close "
    "the masters between runs"
)
CONTROLLER_CPU: list[float] = []  # CPU-seconds of the plain ansible-playbook processes (controller side)
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


async def quiet(_: str) -> None:
    return None


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} s  (runs: {', '.join(f'{v:.3f}' for v in values)})"


def cpu_busy() -> float:
    """CPU-seconds the whole machine has spent busy (all CPUs, every process: controller, hosts and anything else running)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def plain(argv: list[str], env: dict[str, str], cwd: str, names: list[str]) -> tuple[float, int]:
    """Seconds of one `ansible-playbook` run, and its total `changed` (fails unless every host
    ran every task)."""
    import resource

    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd)
    out, err = await proc.communicate()
    elapsed, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    CONTROLLER_CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    recap = {m[0]: tuple(int(x) for x in m[1:]) for m in RECAP.findall(out.decode())}
    if proc.returncode != 0 or sorted(recap) != sorted(names) or any(r[0] != 10 or r[2] or r[3] for r in recap.values()):
        raise RuntimeError(f"ansible-playbook exited with {proc.returncode}, recap {recap}: {(out + err).decode()[-1500:]}")
    return elapsed, sum(r[1] for r in recap.values())


async def changed_config(env: dict[str, str], cwd: str) -> str:
    """What ansible-config says differs from Ansible's defaults in the baseline's environment."""
    proc = await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "ansible-config"),
        "dump",
        "--only-changed",
        "-t",
        "all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )
    out, _ = await proc.communicate()
    return "; ".join(line.strip() for line in out.decode().splitlines() if " = " in line) or out.decode().strip()


async def close_masters(control_dir: str) -> None:
    for sock in glob.glob(os.path.join(control_dir, "*")):
        if not os.path.isdir(sock):
            proc = await asyncio.create_subprocess_exec(
                "ssh",
                "-F",
                "/dev/null",
                "-o",
                f"ControlPath={sock}",
                "-O",
                "exit",
                "x",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=materialize.SSH_ENV,
            )
            await proc.wait()


async def reset_hosts(inventory: dict) -> None:
    results = await run_shell(inventory, "all", f"rm -rf {DIR}", progress=quiet)
    bad = [(r.host, r.stderr) for r in results if r.status != "ok"]
    if bad:
        raise RuntimeError(f"could not reset the hosts: {bad}")


class TimedLog(list):
    """The fake engine's log list, recording when each message arrived (the plugin's progress:
    "running the play…" just before ansible-playbook starts, then one message per task result)."""

    def append(self, request) -> None:
        super().append((time.perf_counter(), request))


def phases(start: float, checked: float, logs: TimedLog, end: float) -> dict[str, float]:
    """Where a Play's seconds went, from the plugin's progress messages."""
    started = next((t for t, r in logs if r.message.startswith("running the play")), checked)  # then: masters, ansible-playbook
    tasks_at = [t for t, r in logs if r.message.startswith("task `")]
    first, last = (tasks_at[0], tasks_at[-1]) if tasks_at else (end, end)
    return {
        "check(+diff)": checked - start,
        "before ansible": started - checked,
        "masters + ansible start + 1st task": first - started,
        "1st to last result": last - first,
        "after last result": end - last,
    }


def play_runs(inventory: dict, play_tasks: list[dict], names: list[str], nonce: str) -> tuple[float, float, int, int, dict, dict]:
    """(cold, warm) seconds and changed counts of a Play in a fresh plugin process:
    Check + Create, then Check + Diff + Update with a new trigger; and their phases."""
    from pulumi.runtime.proto import provider_pb2

    from testbed_provider.protocol import codec
    from testbed_provider.protocol.codec import Secret
    from tests.plugin.engine import PluginUnderTest

    token = "testbed:index:Play"
    urn = f"urn:pulumi:bench::play::{token}::setup"
    secret_inventory = {**inventory, "ssh": {**inventory["ssh"], "privateKey": Secret(inventory["ssh"]["privateKey"])}}
    news = {"inventory": secret_inventory, "on": "all", "tasks": play_tasks, "triggers": [nonce, 0]}

    def check(props: dict, olds=None):
        checked = plugin.stub.Check(
            provider_pb2.CheckRequest(urn=urn, type=token, name="setup", olds=codec.encode(olds or {}), news=codec.encode(props))
        )
        if checked.failures:
            raise RuntimeError(f"Play Check: {[(f.property, f.reason) for f in checked.failures]}")
        return checked

    def verify(props, what: str) -> int:
        out = codec.reveal(codec.decode(props))
        stats = {s["host"]: s for s in out["hostStats"]}
        if sorted(stats) != sorted(names) or any(s["ok"] != 10 or s["failed"] or s["unreachable"] for s in stats.values()):
            raise RuntimeError(f"Play {what}: unexpected recap {out['hostStats'][:3]}…")
        return int(out["changed"])

    plugin = PluginUnderTest()
    try:
        plugin.handshake_and_configure()
        plugin.engine.logs = logs = TimedLog()
        start = time.perf_counter()
        checked = check(news)
        t_checked = time.perf_counter()
        created = plugin.stub.Create(provider_pb2.CreateRequest(urn=urn, type=token, properties=checked.inputs, timeout=300))
        cold = time.perf_counter() - start
        cold_phases = phases(start, t_checked, logs, start + cold)
        plugin.engine.logs = logs = TimedLog()
        cold_changed = verify(created.properties, "Create")

        start = time.perf_counter()
        rechecked = check({**news, "triggers": [nonce, 1]}, olds=codec.decode(checked.inputs))
        diff = plugin.stub.Diff(
            provider_pb2.DiffRequest(
                id=created.id, urn=urn, type=token, olds=created.properties, old_inputs=checked.inputs, news=rechecked.inputs
            )
        )
        t_checked = time.perf_counter()
        if diff.changes != provider_pb2.DiffResponse.DIFF_SOME:
            raise RuntimeError("Play Diff: a new trigger is no change?")
        updated = plugin.stub.Update(
            provider_pb2.UpdateRequest(
                id=created.id, urn=urn, type=token, olds=created.properties, news=rechecked.inputs, old_inputs=checked.inputs, timeout=300
            )
        )
        warm = time.perf_counter() - start
        return (cold, warm, cold_changed, verify(updated.properties, "Update"), cold_phases, phases(start, t_checked, logs, start + warm))
    finally:
        plugin.stop()


async def main(hosts: int, runs: int) -> None:
    run_root = tempfile.mkdtemp(prefix="tb-bench-play-")
    testbed = LocalTestbed(run_root=run_root)
    work = tempfile.mkdtemp(prefix="tb-bench-pb-")  # playbook, inventory, template, Ansible's dirs
    control_dir = os.path.join(work, "cp")
    state = None
    try:
        spec = ReservationSpec(name="play", machines=[MachineGroup(["node"], hosts)])
        state = await testbed.reserve(spec, "urn:bench-play", quiet)
        inventory = reveal(outputs_from_state(state, {})["inventory"])
        names = [h["name"] for h in inventory["hosts"]]
        ws = await materialize.workspace(inventory)

        template = os.path.join(work, "app.conf.j2")
        Path(template).write_text(TEMPLATE)
        play_tasks = tasks(template)
        import yaml

        book = os.path.join(work, "play.yml")
        Path(book).write_text(
            yaml.safe_dump([{"name": "bench", "hosts": "all", "gather_facts": False, "tasks": play_tasks}], sort_keys=False)
        )
        inv = materialize.ansible_inventory_data(ws.inventory)
        inv["all"]["vars"] = {"ansible_ssh_common_args": f"-F {shlex.quote(state['local']['sshConfig'])}"}
        inv_file = os.path.join(work, "inventory.yml")
        Path(inv_file).write_text(yaml.safe_dump(inv, sort_keys=False))
        plain_env = {
            **materialize.SSH_ENV,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
            "ANSIBLE_HOME": os.path.join(work, "home"),
            "ANSIBLE_LOCAL_TEMP": os.path.join(work, "home", "tmp"),
        }
        argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inv_file, "-f", str(hosts), book]
        print(f"{hosts} local hosts ready; {runs} runs per figure (median shown)")
        print(f"baseline: {shlex.join(['ansible-playbook', '-i', 'inventory.yml', '-f', str(hosts), 'play.yml'])}")
        print(f"  configuration: {PLAIN_CONFIG}")
        print(f"  `ansible-config dump --only-changed -t all` there: {await changed_config(plain_env, work)}\n")

        fig: dict[str, list[float]] = {k: [] for k in ("play_cold", "play_warm", "plain_first", "plain_second")}
        changed: dict[str, set[int]] = {k: set() for k in fig}
        cpu: dict[str, list[float]] = {k: [] for k in fig}
        prof: dict[str, list[dict[str, float]]] = {"play_cold": [], "play_warm": []}
        nonce = os.urandom(4).hex()
        for k in range(runs):
            await materialize.close()
            await reset_hosts(inventory)
            await close_masters(control_dir)
            for key in ("plain_first", "plain_second"):
                busy = cpu_busy()
                t, c = await plain(argv, plain_env, work, names)
                cpu[key].append(cpu_busy() - busy)
                fig[key].append(t)
                changed[key].add(c)
            await close_masters(control_dir)
            await reset_hosts(inventory)
            await materialize.close()  # (the plugin has its own masters; these are the bench's)
            busy = cpu_busy()
            cold, warm, c_cold, c_warm, p_cold, p_warm = await asyncio.to_thread(play_runs, inventory, play_tasks, names, f"{nonce}-{k}")
            cpu["play_cold"].append(cpu_busy() - busy)  # both Play runs (plus the plugin's start): split below
            prof["play_cold"].append(p_cold)
            prof["play_warm"].append(p_warm)
            fig["play_cold"].append(cold)
            fig["play_warm"].append(warm)
            changed["play_cold"].add(c_cold)
            changed["play_warm"].add(c_warm)

        med = {k: statistics.median(v) for k, v in fig.items()}
        ch = {k: "/".join(str(c) for c in sorted(v)) for k, v in changed.items()}
        print(f"Play, fresh plugin: Check + Create (cold)    : {fmt(fig['play_cold'])}   changed {ch['play_cold']}")
        print(f"Play, Check + Diff + Update, trigger (warm)  : {fmt(fig['play_warm'])}   changed {ch['play_warm']}")
        print(f"plain ansible-playbook -f {hosts}, first run     : {fmt(fig['plain_first'])}   changed {ch['plain_first']}")
        print(f"plain ansible-playbook, second run (warm)    : {fmt(fig['plain_second'])}   changed {ch['plain_second']}")
        print()
        cold_ratio, warm_ratio = med["play_cold"] / med["plain_first"], med["play_warm"] / med["plain_second"]
        verdict = lambda r: "met" if r <= 1.1 else "NOT met"  # noqa: E731
        print(f"Play cold / plain first  = {cold_ratio:.2f}   (target ≤ 1.1: {verdict(cold_ratio)})")
        print(f"Play warm / plain second = {warm_ratio:.2f}   (target ≤ 1.1: {verdict(warm_ratio)})")
        expected = {"play_cold": CHANGING * hosts, "plain_first": CHANGING * hosts, "play_warm": 0, "plain_second": 0}
        wrong = {k: ch[k] for k, v in expected.items() if changed[k] != {v}}
        print()
        ncpu = os.cpu_count() or 1
        print(f"machine CPU busy (all {ncpu} CPUs, controller + hosts), median CPU-s per run:")
        print(
            f"  plain first {statistics.median(cpu['plain_first']):.1f}, plain second {statistics.median(cpu['plain_second']):.1f}, "
            f"Play cold + warm together {statistics.median(cpu['play_cold']):.1f}   "
            f"(plain ansible-playbook's own processes: {statistics.median(CONTROLLER_CPU):.1f} CPU-s per run)"
        )
        for key, label in (("play_cold", "Play cold"), ("play_warm", "Play warm")):
            parts = {p: statistics.median(run[p] for run in prof[key]) for p in prof[key][0]}
            print(f"  {label} phases (median s): " + ", ".join(f"{p} {v:.2f}" for p, v in parts.items()))
        print(f"idempotence: first runs {CHANGING * hosts} changed, re-runs 0 changed: " + ("yes" if not wrong else f"NO ({wrong})"))
    finally:
        await materialize.close()
        await close_masters(control_dir)  # the masters plain Ansible left (ControlPersist)
        if state is not None:
            await testbed.release(state, quiet)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run_root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/play.py needs root (the local testbed uses network and mount namespaces)")
    asyncio.run(main(args.hosts, max(3, args.runs)))
