#!/usr/bin/env python3
"""myperf — the EnOSlib tutorial's iperf3 command line, on Pulumi stacks.

    myperf local [--clients N]      reserve and deploy on the local testbed (stack `local`)
    myperf g5k [--clients N]        the same on Grid'5000 (stack `g5k`, configured beforehand:
                                    `pulumi config set testbed:g5k… --stack g5k`, see README)
    myperf bench -t 120 [-- -P 4 -R]  one measurement on the current stack; iperf3 client
                                    options after `--`; prints each client's Gbit/s
    myperf backup                   copy every client's reports to backups/<stack>/<host>/ (a Fetch),
                                    the metrics to backups/<stack>/metrics/ (a MetricsBackup) and
                                    draw each measurement's throughput: backups/<stack>/<run>.png
    myperf status                   the current stack's outputs
    myperf destroy                  release everything of the current stack

Each command is a `pulumi up` (or destroy) of this directory's program through the Automation
API, with its stack config set first (`myperf:bench`, `myperf:backup`, …): the program declares
what exists, so `bench` twice with the same options re-runs only the measurement, and
`destroy` works from stack state alone. Progress (reservations, steps, the provider's own status
lines) is shown while waiting. State lives in `.pulumi-state/` beside this file unless
PULUMI_BACKEND_URL says otherwise; the passphrase is PULUMI_CONFIG_PASSPHRASE (default empty).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent


def _workspace():
    from pulumi import automation as auto

    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "")
    if "PULUMI_BACKEND_URL" not in os.environ:
        (HERE / ".pulumi-state").mkdir(exist_ok=True)
        os.environ["PULUMI_BACKEND_URL"] = f"file://{HERE / '.pulumi-state'}"
    return auto.LocalWorkspace(work_dir=str(HERE))


def _stack(name: Optional[str], create: bool = False):
    """The named stack (created if asked), else the one `myperf local|g5k` selected last."""
    from pulumi import automation as auto

    ws = _workspace()
    if name is None:
        current = ws.stack()
        if current is None:
            raise SystemExit("myperf: no current stack: run `myperf local` or `myperf g5k` first")
        name = current.name
    if create:
        stack = auto.create_or_select_stack(stack_name=name, work_dir=str(HERE))
    else:
        try:
            stack = auto.select_stack(stack_name=name, work_dir=str(HERE))
        except auto.StackNotFoundError:
            raise SystemExit(f"myperf: no stack `{name}` here: run `myperf local` or `myperf g5k` first") from None
    ws.select_stack(name)  # the next command works on this stack
    return stack


class Progress:
    """Engine events → one line per step and per provider status message, timestamped."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.last: dict[str, str] = {}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def __call__(self, event: Any) -> None:
        name = lambda urn: urn.rsplit("::", 1)[-1] if urn else ""  # noqa: E731
        op = lambda md: getattr(md.op, "value", md.op)  # noqa: E731
        if event.resource_pre_event and op(event.resource_pre_event.metadata) not in ("same", "read"):
            md = event.resource_pre_event.metadata
            self.say(f"{name(md.urn)}: {op(md)} …")
        elif event.res_outputs_event and op(event.res_outputs_event.metadata) not in ("same", "read"):
            md = event.res_outputs_event.metadata
            self.say(f"{name(md.urn)}: {op(md)} done")
        elif event.res_op_failed_event:
            self.say(f"{name(event.res_op_failed_event.metadata.urn)}: failed")
        elif event.diagnostic_event:
            d = event.diagnostic_event
            text = d.message.strip()
            if not text or d.severity == "debug":
                return
            key = d.urn or ""
            if self.last.get(key) != text:
                self.last[key] = text
                self.say(f"{name(d.urn) or 'pulumi'}: {text}" if d.severity in ("info", "info#err") else f"{d.severity}: {text}")


def _up(stack, what: str) -> dict[str, Any]:
    progress = Progress()
    progress.say(f"{what} on stack `{stack.name}`")
    try:
        result = stack.up(on_event=progress, color="never")
    except Exception as err:  # the engine's own message, without the Automation API's wrapping
        message = str(err).split("stderr:", 1)[-1].strip()
        raise SystemExit(f"myperf: {what} failed:\n{message[-3000:]}") from None
    progress.say(f"{what}: done")
    return {k: v.value for k, v in result.outputs.items()}


def cmd_up(args: argparse.Namespace, backend: str) -> None:
    from pulumi import automation as auto

    stack = _stack(args.stack or backend, create=True)
    stack.set_config("testbed:backend", auto.ConfigValue(backend))
    if args.clients is not None:
        stack.set_config("myperf:clients", auto.ConfigValue(str(args.clients)))
    outputs = _up(stack, f"deploying myperf ({backend})")
    print(f"server on the experiment network: {outputs.get('server_address')}")
    print(f"roles: {json.dumps(outputs.get('roles'))}")


def cmd_bench(args: argparse.Namespace) -> None:
    from pulumi import automation as auto

    stack = _stack(args.stack)
    run = time.strftime("%Y%m%d-%H%M%S")
    extra = " ".join(args.iperf3)
    stack.set_config("myperf:bench", auto.ConfigValue(json.dumps({"id": run, "duration": args.time, "args": extra})))
    outputs = _up(stack, f"iperf3 for {args.time} s" + (f" with `{extra}`" if extra else ""))
    bench = outputs.get("bench") or {}
    for host, gbps in sorted((bench.get("gbps") or {}).items()):
        print(f"{host}: {gbps} Gbit/s")
    window = _record(stack.name, run, bench)
    print(
        f"run {run} from {window[0]} to {window[1]}: reports in /root/results/{run}.json on each client "
        "(`myperf backup` copies them here, with the metrics of that window)"
    )


def _runs_file(stack: str) -> Path:
    return HERE / "backups" / stack / "runs.json"


def _record(stack: str, run: str, bench: dict[str, Any]) -> tuple[str, str]:
    """Keep the measurement's time window (from the clients' own start times and durations),
    so the backup can draw that window out of the metrics."""
    import datetime

    starts, ends = [], []
    for started, seconds in (bench.get("windows") or {}).values():
        t0 = datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
        starts.append(t0)
        ends.append(t0 + datetime.timedelta(seconds=float(seconds)))
    iso = lambda t: t.astimezone(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")  # noqa: E731
    window = (iso(min(starts)), iso(max(ends))) if starts else ("", "")
    path = _runs_file(stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({"id": run, "from": window[0], "to": window[1], "gbps": bench.get("gbps"), "args": bench.get("args")})
    path.write_text(json.dumps(runs, indent=2) + "\n")
    return window


def cmd_backup(args: argparse.Namespace) -> None:
    from pulumi import automation as auto

    stack = _stack(args.stack)
    stack.set_config("myperf:backup", auto.ConfigValue(time.strftime("%Y%m%d-%H%M%S")))
    outputs = _up(stack, "backing up the reports and the metrics")
    backup = outputs.get("backup") or {}
    for entry in backup.get("files") or []:
        print(f"{entry['host']}: {entry['path']} ({entry['size']} bytes, sha256 {entry['sha256'][:16]}…)")
    print(f"in {HERE / str(backup.get('directory'))}")
    metrics = HERE / str(backup.get("metrics"))
    print(f"metrics snapshot: {metrics} ({backup.get('metricsBytes')} bytes; `testbed metrics --backup {metrics} --query …`)")
    interfaces = outputs.get("experiment_interfaces") or {}
    runs = json.loads(_runs_file(stack.name).read_text()) if _runs_file(stack.name).exists() else []
    for run in runs:
        if not run.get("from"):
            continue
        png = _runs_file(stack.name).parent / f"{run['id']}.png"
        _plot(metrics, run, interfaces, png)
        print(f"run {run['id']}: throughput of {', '.join(sorted(interfaces))} on the experiment network in {png}")


def _plot(metrics: Path, run: dict[str, Any], interfaces: dict[str, str], png: Path) -> None:
    """`testbed plot` of the run's window, with a second of margin on each side."""
    import datetime
    import subprocess

    def shifted(t: str, seconds: int) -> str:
        return (datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) + datetime.timedelta(seconds=seconds)).isoformat()

    argv = [
        str(Path(sys.executable).with_name("testbed")),
        "plot",
        "--backup",
        str(metrics),
        "--view",
        "throughput",
        "--hosts",
        ",".join(sorted(interfaces)),
        "--interfaces",
        ",".join(sorted(set(interfaces.values()))),
        "--from",
        shifted(run["from"], -2),
        "--to",
        shifted(run["to"], 2),
        "--title",
        f"myperf run {run['id']}: experiment network",
        "--output",
        str(png),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"myperf: drawing run {run['id']} failed: {proc.stderr.strip()}")


def cmd_status(args: argparse.Namespace) -> None:
    stack = _stack(args.stack)
    print(json.dumps({k: v.value for k, v in stack.outputs().items()}, indent=2, default=str))


def cmd_destroy(args: argparse.Namespace) -> None:
    stack = _stack(args.stack)
    progress = Progress()
    progress.say(f"destroying stack `{stack.name}`")
    stack.destroy(on_event=progress, color="never")
    for key in ("myperf:bench", "myperf:backup"):
        stack.remove_config(key)
    progress.say("destroyed")


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    iperf3: list[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, iperf3 = argv[:k], argv[k + 1 :]
    parser = argparse.ArgumentParser(prog="myperf", description="iperf3 experiments on Pulumi stacks (EnOSlib's myperf).")
    parser.add_argument("--stack", help="stack to act on (default: the one selected last)")
    sub = parser.add_subparsers(dest="command", required=True)
    for backend in ("local", "g5k"):
        p = sub.add_parser(backend, help=f"reserve and deploy on the {backend} testbed")
        p.add_argument("--clients", type=int, help="number of iperf3 clients (default 1)")
    bench = sub.add_parser("bench", help="run one measurement (iperf3 client options after `--`)")
    bench.add_argument("-t", "--time", type=int, default=10, help="seconds to transmit (default 10)")
    sub.add_parser("backup", help="copy the reports and the metrics to backups/<stack>/, draw each run's throughput")
    sub.add_parser("status", help="the stack's outputs")
    sub.add_parser("destroy", help="release everything")
    args = parser.parse_args(argv)
    args.iperf3 = iperf3
    if args.command in ("local", "g5k"):
        cmd_up(args, args.command)
    else:
        {"bench": cmd_bench, "backup": cmd_backup, "status": cmd_status, "destroy": cmd_destroy}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
