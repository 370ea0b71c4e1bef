"""`pulumi preview` and `pulumi up` of a 100-node, 3-site g5k Reservation against the emulator.

One run, accelerated clock (`--clock-speed`, emulated seconds per real second). For preview, up
and destroy it prints: wall time, the provider's own CPU time and its share of the wall time,
the engine's (pulumi + language host) CPU, the emulator's CPU, and the Grid'5000 API calls made
by route (the emulator counts them). With `--hosts` (root) the nodes are real local hosts and
`up` goes all the way to SSH-ready; without, the stack stops at SSH readiness and the figures
cover OAR + Kadeploy only (use `--no-hosts` when not root).

Run from the repository: `scripts/bench.sh g5k [--clock-speed 600] [--no-hosts] [--network]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from g5k_emulator.testing import EmulatorProcess  # noqa: E402
from tests.e2e.stack import Stack  # noqa: E402


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def provider_cpu(usage_file: Path) -> tuple[float, float]:
    """CPU of every provider process that ended since the file was last cleared, and of the
    processes it ran (ssh, ssh-keyscan)."""
    if not usage_file.exists():
        return 0.0, 0.0
    lines = [json.loads(line) for line in usage_file.read_text().splitlines() if line.strip()]
    usage_file.unlink()
    return sum(u["cpuS"] for u in lines), sum(u["childrenCpuS"] for u in lines)


def phase(name: str, stack: Stack, emu: EmulatorProcess, usage_file: Path, *args: str) -> dict:
    emu.control("DELETE", "calls")
    emu_cpu0, children0 = cpu_of(emu.pid), children_cpu()
    start = time.perf_counter()
    proc = stack.run(*args, timeout=3600, check=False)
    wall = time.perf_counter() - start
    prov, prov_children = provider_cpu(usage_file)
    engine = children_cpu() - children0 - prov - prov_children  # pulumi, language host, program
    calls = emu.control("GET", "calls")
    return {
        "phase": name,
        "ok": proc.returncode == 0,
        "tail": (proc.stdout + proc.stderr).strip().splitlines()[-12:],
        "wall": wall,
        "provider": prov,
        "providerChildren": prov_children,
        "engine": max(0.0, engine),
        "emulator": cpu_of(emu.pid) - emu_cpu0,
        "calls": calls["total"],
        "byRoute": calls["calls"],
    }


def report(r: dict) -> None:
    print(
        f"{r['phase'] + ('' if r['ok'] else ' FAILED'):<8} wall {r['wall']:7.2f} s | provider CPU {r['provider']:6.2f} s ({100 * r['provider'] / r['wall']:4.1f}% of wall)"
        f" + its ssh {r['providerChildren']:5.2f} s | engine CPU {r['engine']:6.2f} s | emulator CPU {r['emulator']:6.2f} s | API calls {r['calls']}"
    )
    for route, n in sorted(r["byRoute"].items(), key=lambda kv: -kv[1]):
        print(f"           {n:5d}  {route}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clock-speed",
        type=float,
        default=None,
        help="default 60: the 1 h walltime (60 s real) must outlast building the hosts and the provider's backed-off polling",
    )
    parser.add_argument("--deploy-seconds", type=float, default=180.0, help="emulated duration of a deployment")
    parser.add_argument("--hosts", action=argparse.BooleanOptionalAction, default=os.geteuid() == 0)
    parser.add_argument("--network", action="store_true", help="add one KaVLAN network per site")
    parser.add_argument("--layout", default="lyon:nova:20,nancy:grisou:45,rennes:paravance:35")
    args = parser.parse_args()
    if args.clock_speed is None:
        args.clock_speed = 60.0

    with tempfile.TemporaryDirectory(prefix="tb-bench-g5k-") as tmp:
        tmp_path = Path(tmp)
        usage_file = tmp_path / "provider-usage.jsonl"
        os.environ["PULUMI_TESTBED_RUSAGE_FILE"] = str(usage_file)
        if not args.hosts:
            os.environ.setdefault("PULUMI_TESTBED_G5K_READY_TIMEOUT", "5")
        with EmulatorProcess(tmp_path / "emu", clock_speed=args.clock_speed, hosts=args.hosts, deploy_seconds=args.deploy_seconds) as emu:
            proxy = emu.control("GET", "ssh").get("proxyCommand") or "false"
            config = {
                "testbed:backend": "g5k",
                "testbed:g5kConfigFile": emu.config_file,
                "testbed:g5kSshProxyCommand": proxy,
                "layout": args.layout,
                "network": "true" if args.network else "false",
            }
            stack = Stack(tmp_path, example=str(ROOT / "bench" / "g5k"), stack="bench", config=config)
            total = sum(int(part.split(":")[2]) for part in args.layout.split(","))
            sites = len(args.layout.split(","))
            print(
                f"{total} nodes on {sites} sites; clock ×{args.clock_speed:g}; deployments {args.deploy_seconds:g} emulated s; "
                f"hosts {'real (SSH-ready)' if args.hosts else 'absent (up stops at SSH readiness)'}\n"
            )
            results = [phase("preview", stack, emu, usage_file, "preview")]
            results.append(phase("up", stack, emu, usage_file, "up", "--yes", "--skip-preview"))
            if not results[-1]["ok"]:
                print(
                    "up failed"
                    + (" (expected without hosts: nothing answers SSH)" if not args.hosts else "")
                    + ":\n  "
                    + "\n  ".join(results[-1]["tail"])
                    + "\n"
                )
            results.append(phase("destroy", stack, emu, usage_file, "destroy", "--yes", "--skip-preview"))
            for r in results:
                report(r)


if __name__ == "__main__":
    main()
