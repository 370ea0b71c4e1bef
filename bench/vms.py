"""VM machines of the local testbed (`kind: vm`, QEMU) against namespace hosts, with the real engine.

One temporary project (bench/vms: `count` machines of `kind` on one experiment network, and with
`delay` a Netem from node-1 to node-2), its own cache directory (so the image build is cold):

1. image     the VM image built cold (`python -m testbed_provider.hosts.vm.image` in an empty
             cache: Debian's kernel, mmdebstrap, initramfs, qcow2), then asked again (cached);
2. ready     `pulumi up` of N = 1, 2, 4 VMs until every one answers SSH, against the same up of
             N namespace hosts; --rounds of each (default 1), medians; the destroy too; the
             very first VM apart (the accelerator probe runs once per cache);
3. memory    resident memory (VmRSS) of each QEMU once its VM is SSH-ready, per VM;
4. netem     on 2 VMs a Netem adding 10, 50, 100 ms from node-1 to node-2 (one way: the round
             trip asked is the delay), updated in place: the round trips fping measured (the
             Netem's validation) beside the asked ones, without and with `accurate`; the base
             round trip (ping, no constraint) of the VMs and of namespace hosts in the same run.
             Namespace hosts share this machine's kernel, which has no netem: no delay there.

Run as root from the repository: `python bench/vms.py [--rounds 1] [--max 4]`
(`scripts/bench.sh vms …`). About 5 minutes with the defaults.

Figures (2026-12-02, `--rounds 3`, medians; 2 CPUs, load 0.8 → 3.2; TCG: /dev/kvm here is a PVM
hypervisor that cannot run the guest):
  image cold 28.0 s, cached 0.07 s; the first VM in a fresh cache 46.1 s with a 40 s KVM probe
    timeout, 21.3 s after it was lowered to 15 s (a second run)
  up to SSH-ready, namespace hosts / VMs: N=1 1.30 / 6.07 s (4.7x), N=2 1.32 / 6.51 s (4.9x),
    N=4 1.40 / 12.65 s (9.1x: four emulated CPUs on two cores); destroy ~1 s for both kinds
  QEMU resident memory per tiny VM (512 MB guest): median 284 MB, max 289 MB
  base round trip: VMs 1.94 ms, namespace hosts 0.08 ms
  netem, asked RTT → fping avg (error): 10 ms → 11.87 (+1.87 ms), 50 → 52.06 (+2.06), 100 →
    102.40 (+2.40); with accurate (base 1.37 ms subtracted on the way out): 11.34 (+0.65 ms
    against the asked delay plus the unconstrained way back), 52.22 (+1.53), 102.40 (+1.71)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monitoring import Project, alive, loadavg, log  # noqa: E402  (bench/ is not a package)

DELAYS_MS = (10, 50, 100)


class VmProject(Project):
    """bench/vms in a temporary directory, one stack `bench`, its own PULUMI_TESTBED_CACHE."""

    def __init__(self, tmp: str):
        super().__init__(tmp, None, source="bench/vms")  # its cache: the image is built cold there

    def local_state(self) -> dict[str, Any]:
        deployment = json.loads(self.pulumi("stack", "export").stdout)["deployment"]
        res = next(r for r in deployment.get("resources") or [] if r["type"] == "testbed:index:Reservation")
        return res["outputs"]["testbedState"]["local"]

    def destroy(self) -> float:
        start = time.perf_counter()
        self.pulumi("destroy", "--yes", "--skip-preview")
        self.created = False
        return time.perf_counter() - start


def build_image(env: dict[str, str]) -> tuple[float, float]:
    """Seconds of the image command, and the build's own figure from its JSON."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "testbed_provider.hosts.vm.image", "--json"], env=env, capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, json.loads(proc.stdout)["build_seconds"]


def qemu_rss_mb(pids: list[int]) -> list[float]:
    out = []
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            out.append(next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024)
    return out


def ping_rtt(project: VmProject, address: str) -> float:
    """Mean round trip node-1 → `address` over 20 pings, ms."""
    text = project.on_host("node-1", f"ping -c 20 -i 0.2 -q {address}")
    found = re.search(r"= [0-9.]+/([0-9.]+)/", text)
    if found is None:
        raise RuntimeError(f"no ping summary in {text!r}")
    return float(found.group(1))


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="ups of each size and kind (default 1)")
    parser.add_argument("--max", type=int, default=4, choices=(1, 2, 4), help="largest N (default 4)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/vms.py needs root (the local testbed uses namespaces; VMs need taps)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="tb-bench-vms-")
    project: Optional[VmProject] = None
    qemus: list[int] = []
    failed = False
    try:
        print(f"VM bench: {os.cpu_count()} CPUs, load average {loadavg()} at start")
        project = VmProject(tmp)
        cold, built = build_image(project.env)
        cached, _ = build_image(project.env)
        log(f"image: cold {cold:.1f} s (build {built:.1f} s), cached {cached:.2f} s")

        sizes = [n for n in (1, 2, 4) if n <= args.max]
        up: dict[tuple[str, int], list[float]] = {}
        down: dict[tuple[str, int], list[float]] = {}
        rss: list[float] = []
        base: dict[str, float] = {}
        netem: list[dict[str, Any]] = []
        # The first VM in a fresh cache also probes the accelerator (a KVM boot that must fail
        # here before TCG is chosen; its answer is cached): timed apart from the sizes below.
        first = project.up("1 vm, the first: accelerator probe", count=1, kind="vm")
        project.destroy()
        for n in sizes:
            for kind in ("host", "vm"):
                for r in range(max(1, args.rounds)):
                    up.setdefault((kind, n), []).append(project.up(f"{n} {kind}(s)", count=n, kind=kind))
                    if kind == "vm":
                        qemus = [h["vm"]["pid"] for h in project.local_state()["hosts"].values()]
                        rss += qemu_rss_mb(qemus)
                    if n == 2 and r == 0:
                        base[kind] = ping_rtt(project, project.outputs()["address"])
                        if kind == "vm":
                            netem = measure_netem(project)
                    down.setdefault((kind, n), []).append(project.destroy())
        report(cold, built, cached, first, sizes, up, down, rss, base, netem)
        print(f"\nload average at the end {loadavg()}")
    finally:
        if project is not None and project.created:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            proc = project.pulumi("destroy", "--yes", "--skip-preview", check=False)
            failed = proc.returncode != 0
        left = [p for p in qemus if alive(p) and Path(f"/proc/{p}/comm").read_text().startswith("qemu")]
        if left:
            print(f"LEFT OVER: QEMU processes {left}", file=sys.stderr)
            failed = True
        if failed:
            print(f"(the project and its state are kept in {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def measure_netem(project: VmProject) -> list[dict[str, Any]]:
    """On the stack's 2 VMs: each delay, without then with `accurate` (updated in place)."""
    rows = []
    for accurate in (False, True):
        for delay in DELAYS_MS:
            project.up(f"netem {delay} ms{' accurate' if accurate else ''}", delay=f"{delay}ms", accurate=str(accurate).lower())
            m = next(v for v in project.outputs()["validation"] if v["src"] == "node-1")
            rows.append({"delay": delay, "accurate": accurate, **m})
    project.config(delay=None, accurate=None)
    return rows


def report(
    cold: float,
    built: float,
    cached: float,
    first: float,
    sizes: list[int],
    up: dict[tuple[str, int], list[float]],
    down: dict[tuple[str, int], list[float]],
    rss: list[float],
    base: dict[str, float],
    netem: list[dict[str, Any]],
) -> None:
    print(f"\nimage: cold {cold:.1f} s (its build {built:.1f} s), cached {cached:.2f} s = {cold / cached:.0f}x")
    print(f"first VM up in a fresh cache (with the accelerator probe): {first:.2f} s")
    print("\nN   up, namespace hosts   up, VMs      ratio   destroy hosts / VMs")
    for n in sizes:
        h, v = med(up[("host", n)]), med(up[("vm", n)])
        dh, dv = med(down[("host", n)]), med(down[("vm", n)])
        print(f"{n:<3} {h:8.2f} s            {v:8.2f} s   {v / h:5.2f}x  {dh:.2f} s / {dv:.2f} s")
    print(f"\nQEMU resident memory per SSH-ready VM (tiny: 512 MB guest): median {med(rss):.0f} MB, max {max(rss):.0f} MB")
    print(
        f"base round trip node-1 → node-2: VMs {base.get('vm', float('nan')):.2f} ms, namespace hosts {base.get('host', float('nan')):.2f} ms"
    )
    print("\nasked RTT  accurate  fping min / avg / max ms     error of avg")
    for r in netem:
        error = r["rtt_avg_ms"] - r["expected_rtt_ms"]
        print(
            f"{r['delay']:>6} ms  {'yes' if r['accurate'] else 'no ':<8}  {r['rtt_min_ms']:7.2f} / {r['rtt_avg_ms']:7.2f} / "
            f"{r['rtt_max_ms']:7.2f}   {error:+6.2f} ms ({100 * error / r['expected_rtt_ms']:+.1f} %)"
            + (f"   base {r['base_rtt_ms']:.2f} ms" if r.get("base_rtt_ms") is not None else "")
        )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
