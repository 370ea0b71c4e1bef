"""Fan-out of `hostname` to N local hosts (default 20): the remote layer against its baselines.

All on one reservation, in one run; every figure is the median of --runs runs (≥ 3):

  layer, cold      run_shell(inventory, "all", "hostname"), engine auto (what a Command step
                   does), with the reservation's ControlMasters stopped before each run
  layer, warm      the same with the connections left open by the previous step
  raw ssh          N plain `ssh` processes in parallel, same key / known_hosts / ProxyCommand,
                   no multiplexing (baseline of the cold layer)
  plain ansible    `ansible all -m shell -a hostname -f N` on the same inventory file and the
                   testbed's plain ssh_config, Ansible's own defaults otherwise (ControlPersist
                   on, pipelining off); first run and warm runs
  layer, ansible   run_shell(..., engine="ansible"), warm
  Command          a `testbed:index:Command` (on: all, create: hostname) created over gRPC in the
                   real plugin process, as the engine does it: Check + the first Create of a
                   fresh plugin (cold: ansible-core imported for the pattern, connections
                   opened), then further Creates (warm)

Targets: layer ≤ 1.5 × raw ssh, and never slower than plain ansible.
Run as root from the repository: `python bench/fanout.py [--hosts 20] [--runs 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "provider"))

from testbed_provider.protocol.codec import reveal  # noqa: E402
from testbed_provider.remote import materialize, run_shell  # noqa: E402
from testbed_provider.resources.reservation import outputs_from_state  # noqa: E402
from testbed_provider.testbeds.base import MachineGroup, ReservationSpec  # noqa: E402
from testbed_provider.testbeds.local import LocalTestbed  # noqa: E402


async def quiet(_: str) -> None:
    return None


async def shell(script: str, env: dict[str, str] | None = None) -> float:
    """Seconds to run `script` with bash (fails loudly on a non-zero exit)."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env or materialize.SSH_ENV
    )
    out, err = await proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"`{script[:120]}` exited with {proc.returncode}: {err.decode()[-800:]}")
    return elapsed


async def layer(inventory: dict, names: list[str], engine: str = "auto") -> float:
    start = time.perf_counter()
    results = await run_shell(inventory, "all", "hostname", engine=engine, progress=quiet)
    elapsed = time.perf_counter() - start
    bad = [r for r in results if r.status != "ok" or r.stdout != r.host]
    if bad or [r.host for r in results] != names:
        raise RuntimeError(f"layer ({engine}): unexpected results {[(r.host, r.status, r.stderr[:200]) for r in bad]}")
    return elapsed


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} s  (runs: {', '.join(f'{v:.3f}' for v in values)})"


def command_creates(inventory: dict, names: list[str], runs: int) -> list[float]:
    """Seconds per gRPC Create of a Command in a fresh plugin process: [Check + first Create, then `runs` more Creates]."""
    sys.path.insert(0, str(ROOT))
    from pulumi.runtime.proto import provider_pb2

    from testbed_provider.protocol import codec
    from testbed_provider.protocol.codec import Secret
    from tests.plugin.engine import PluginUnderTest

    urn = "urn:pulumi:bench::fanout::testbed:index:Command::hostname"
    secret_inventory = {**inventory, "ssh": {**inventory["ssh"], "privateKey": Secret(inventory["ssh"]["privateKey"])}}
    plugin = PluginUnderTest()
    try:
        plugin.handshake_and_configure()
        check_start = time.perf_counter()
        checked = plugin.stub.Check(
            provider_pb2.CheckRequest(
                urn=urn,
                type="testbed:index:Command",
                name="hostname",
                news=codec.encode({"inventory": secret_inventory, "on": "all", "create": "hostname"}),
            )
        )
        assert not checked.failures, [(f.property, f.reason) for f in checked.failures]
        times = []
        for k in range(runs + 1):
            start = check_start if k == 0 else time.perf_counter()
            created = plugin.stub.Create(
                provider_pb2.CreateRequest(urn=urn, type="testbed:index:Command", properties=checked.inputs, timeout=120)
            )
            times.append(time.perf_counter() - start)
            results = codec.reveal(codec.decode(created.properties))["results"]
            if [(r["host"], r["stdout"]) for r in results] != [(n, n) for n in names]:
                raise RuntimeError(f"Command: unexpected results {results[:3]}…")
        return times
    finally:
        plugin.stop()


async def main(hosts: int, runs: int) -> None:
    run_root = tempfile.mkdtemp(prefix="tb-bench-fanout-")
    testbed = LocalTestbed(run_root=run_root)
    ansible_cp = tempfile.mkdtemp(prefix="tb-bench-ansible-cp-")
    state = None
    try:
        spec = ReservationSpec(name="fanout", machines=[MachineGroup(["node"], hosts)])
        state = await testbed.reserve(spec, "urn:bench-fanout", quiet)
        inventory = reveal(outputs_from_state(state, {})["inventory"])
        names = [h["name"] for h in inventory["hosts"]]
        ws = await materialize.workspace(inventory)
        print(f"{hosts} local hosts ready; {runs} runs per figure (median shown)\n")

        figures: dict[str, list[float]] = {
            k: [] for k in ("cold", "warm", "raw", "ansible_first", "ansible_warm", "layer_ansible", "command_first", "command_warm")
        }
        # (b) raw parallel ssh: same key, known_hosts and ProxyCommand, no multiplexing
        raw = (
            " ".join(
                f"ssh -F {shlex.quote(ws.ssh_config)} -o ControlMaster=no -o ControlPath=none -o ControlPersist=no {n} hostname >/dev/null &"
                for n in names
            )
            + " wait"
        )
        # (c) plain ansible on the same inventory, the testbed's own ssh_config (no multiplexing
        # settings of ours), Ansible's defaults otherwise: its own ControlPersist masters
        plain_env = {
            **materialize.SSH_ENV,
            "ANSIBLE_CONFIG": ws.ansible_cfg,
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_ARGS": f"-F {shlex.quote(state['local']['sshConfig'])} -C -o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": ansible_cp,
            "ANSIBLE_LOCAL_TEMP": os.path.join(ansible_cp, "tmp"),
            "ANSIBLE_HOME": os.path.join(ansible_cp, "home"),
        }
        plain = f"{shlex.quote(sys.executable)} -m ansible adhoc all -i {shlex.quote(ws.ansible_inventory)} -m shell -a hostname -f {hosts}"

        for _ in range(runs):
            await materialize.close(inventory)  # stop this reservation's masters: a cold step
            figures["cold"].append(await layer(inventory, names))
            figures["warm"].append(await layer(inventory, names))
            figures["raw"].append(await shell(raw))
        figures["ansible_first"].append(await shell(plain, plain_env))
        for _ in range(runs):
            figures["ansible_warm"].append(await shell(plain, plain_env))
            figures["layer_ansible"].append(await layer(inventory, names, engine="ansible"))

        for _ in range(runs):
            await materialize.close(inventory)  # (the plugin has its own masters; these are ours)
            first, *warm = await asyncio.to_thread(command_creates, inventory, names, 1 if figures["command_first"] else runs)
            figures["command_first"].append(first)
            figures["command_warm"] += warm

        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"(a) layer, engine auto, cold connections : {fmt(figures['cold'])}")
        print(f"    layer, engine auto, warm connections : {fmt(figures['warm'])}")
        print(f"(b) raw parallel ssh, no multiplexing    : {fmt(figures['raw'])}")
        print(f"(c) plain ansible -m shell -f {hosts}, first : {fmt(figures['ansible_first'])}")
        print(f"    plain ansible, masters open          : {fmt(figures['ansible_warm'])}")
        print(f"(d) layer, engine ansible (warm)         : {fmt(figures['layer_ansible'])}")
        print(f"(e) Command Create, fresh plugin (cold)  : {fmt(figures['command_first'])}")
        print(f"    Command Create, plugin warm          : {fmt(figures['command_warm'])}")
        print()
        print(f"Command cold / raw ssh      = {med['command_first'] / med['raw']:.2f}   (target ≤ 1.5)")
        print(f"Command cold / plain ansible = {med['command_first'] / med['ansible_warm']:.3f}   (target ≤ 1)")
        print(f"Command warm / raw ssh      = {med['command_warm'] / med['raw']:.2f}")
        print(f"layer cold / raw ssh        = {med['cold'] / med['raw']:.2f}   (target ≤ 1.5)")
        print(f"layer warm / raw ssh        = {med['warm'] / med['raw']:.2f}")
        print(f"layer cold / plain ansible  = {med['cold'] / med['ansible_warm']:.3f}   (target ≤ 1; vs its warm runs)")
        print(f"layer warm / plain ansible  = {med['warm'] / med['ansible_warm']:.3f}")
        print(f"layer ansible / plain ansible = {med['layer_ansible'] / med['ansible_warm']:.2f}")
    finally:
        await materialize.close()
        # stop the masters plain ansible left (ControlPersist), then release the hosts
        for sock in glob.glob(os.path.join(ansible_cp, "*")):
            if not os.path.isdir(sock):
                await shell(f"ssh -F /dev/null -o ControlPath={shlex.quote(sock)} -O exit x >/dev/null 2>&1 || true")
        if state is not None:
            await testbed.release(state, quiet)
        shutil.rmtree(ansible_cp, ignore_errors=True)
        shutil.rmtree(run_root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/fanout.py needs root (the local testbed uses network and mount namespaces)")
    asyncio.run(main(args.hosts, max(3, args.runs)))
