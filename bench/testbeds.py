"""Time to SSH-ready of one program on every testbed here, with the real engine.

bench/testbeds (`count` machines on one experiment network and a command on all of them) on:
  local      namespace hosts (the baseline: ratios are against it, in the same run);
  local-vm   QEMU VMs (TCG here), N = 2 only unless --vms-max says more;
  g5k        the Grid'5000 emulator at clock x6 (deployments 6 s emulated), real hosts behind it;
             the API calls of each up and destroy counted by the emulator;
  static     namespace hosts another stack brought up, as machines that already exist.
For N = 2 and 20 (--sizes): the Reservation's own time to SSH-ready (`reservedSeconds`, what
`testbed compare` shows), the whole `pulumi up`, and the destroy.

Run as root from the repository: `python bench/testbeds.py [--sizes 2,20] [--vms-max 2]`
(`scripts/bench.sh testbeds …`). About 4 minutes with the defaults.

Figures (2026-12-02, 2 CPUs, while the CI suite ran beside it; ready s / x local / up s / destroy s):
  N=2   local 0.4 / 1.0 / 1.9 / 1.2; local-vm 11.8 / 19.7 / 15.8 / 1.0 (warm image cache; cold,
        with the image build and the KVM probe: 52.1 s); g5k 2.2 / 5.5 / 4.1 / 2.1, API calls
        20 up / 5 destroy; static 0.3 / 0.7 / 1.7 / 1.1
  N=20  local 0.8 / 1.0 / 3.5 / 1.3; g5k 4.0 / 5.0 / 7.2 / 2.1, API calls 24 / 5;
        static 1.4 / 1.7 / 3.9 / 1.1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monitoring import Project, log  # noqa: E402  (bench/ is not a package)


def reservation(project: Project) -> dict[str, Any]:
    """The Reservation's outputs, secrets revealed."""
    from testbed_provider.cli.stacks import reveal

    deployment = json.loads(project.pulumi("stack", "export", "--show-secrets").stdout)["deployment"]
    [nodes] = [r for r in deployment["resources"] if r["type"] == "testbed:index:Reservation"]
    return reveal(nodes["outputs"])


def calls(emu: Any) -> int:
    return sum(int(n) for n in emu.control("GET", "calls")["calls"].values())


def warm_vm_cache(project: Project) -> None:
    """The project's cache gets this machine's VM image and KVM verdict (built or probed once,
    outside the bench: bench/vms.py measures the cold path)."""
    from testbed_provider.hosts.vm.image import cache_root

    real = Path(cache_root()).parent
    mine = Path(project.env["PULUMI_TESTBED_CACHE"])
    mine.mkdir(parents=True, exist_ok=True)
    for name in ("vm-images", "vm-accel.json"):
        if (real / name).exists() and not (mine / name).exists():
            (mine / name).symlink_to(real / name)


def measure(tmp: str, name: str, count: int, config: dict[str, Any], emu: Any = None) -> dict[str, Any]:
    project = Project(os.path.join(tmp, f"{name}-{count}"), None, source="bench/testbeds")
    if config.get("kind") == "vm":
        warm_vm_cache(project)
    project.config(count=count, **config)
    before = calls(emu) if emu else 0
    up = project.up(f"{name}, {count} machines")
    row: dict[str, Any] = {"testbed": name, "n": count, "up_s": up, "ready_s": reservation(project)["testbedState"].get("reservedSeconds")}
    outputs = project.outputs()
    assert outputs["hosts"] == count and outputs["ran"] == count, outputs
    middle = calls(emu) if emu else 0
    start = time.perf_counter()
    project.pulumi("destroy", "--yes", "--skip-preview")
    row["destroy_s"] = time.perf_counter() - start
    if emu:
        row["calls_up"], row["calls_destroy"] = middle - before, calls(emu) - middle
    return row


def static_config(outputs: dict[str, Any], key_file: str) -> dict[str, Any]:
    hosts = [
        {"address": h["address"], "networks": [{"id": n["id"], "address": n["address"]} for n in h["networks"]]} for h in outputs["hosts"]
    ]
    return {
        "testbed:backend": "static",
        "testbed:staticHosts": json.dumps({"node": hosts}),
        "testbed:staticSshKeyFile": key_file,
        "testbed:staticSshUser": outputs["ssh"]["user"],
        "testbed:staticSshProxyCommand": outputs["ssh"]["proxyCommand"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2,20", help="machine counts (default 2,20)")
    parser.add_argument("--vms-max", type=int, default=2, help="largest N run as VMs (default 2)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    os.environ["PULUMI_TESTBED_G5K_MAX_POLL"] = "0.3"
    from g5k_emulator.testing import EmulatorProcess

    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="tb-bench-testbeds-") as tmp,
        EmulatorProcess(Path(tmp, "emu"), clock_speed=6, hosts=True, deploy_seconds=6) as emu,
    ):
        proxy = emu.control("GET", "ssh")["proxyCommand"]
        for n in sizes:
            rows.append(measure(tmp, "local", n, {}))
            if n <= args.vms_max:
                rows.append(measure(tmp, "local-vm", n, {"kind": "vm"}))
            g5k = {"testbed:backend": "g5k", "testbed:g5kConfigFile": emu.config_file, "testbed:g5kSite": "lyon"}
            rows.append(measure(tmp, "g5k", n, {**g5k, "testbed:g5kSshProxyCommand": proxy}, emu))
            existing = Project(os.path.join(tmp, f"existing-{n}"), None, source="bench/testbeds")
            existing.config(count=n)
            existing.up(f"{n} machines for the static backend")
            outputs = reservation(existing)
            key = Path(tmp, f"key-{n}")
            key.write_text(outputs["sshPrivateKey"])
            key.chmod(0o600)
            rows.append(measure(tmp, "static", n, static_config(outputs, str(key))))
            existing.pulumi("destroy", "--yes", "--skip-preview")
    print()
    print(f"{'testbed':9} {'N':>3} {'ready s':>8} {'x local':>8} {'up s':>7} {'destroy s':>9} {'API calls up/destroy':>21}")
    for row in rows:
        base: Optional[dict[str, Any]] = next((r for r in rows if r["testbed"] == "local" and r["n"] == row["n"]), None)
        ratio = row["ready_s"] / base["ready_s"] if base and base["ready_s"] else float("nan")
        api = f"{row['calls_up']}/{row['calls_destroy']}" if "calls_up" in row else "-"
        print(
            f"{row['testbed']:9} {row['n']:>3} {row['ready_s']:>8.1f} {ratio:>8.1f} {row['up_s']:>7.1f} {row['destroy_s']:>9.1f} {api:>21}"
        )
    return 0


if __name__ == "__main__":
    log("bench/testbeds.py: one program on every testbed")
    sys.exit(main())
