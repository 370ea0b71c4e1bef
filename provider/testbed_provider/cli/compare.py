"""`testbed compare`: one experiment on several testbeds, side by side (the tutorial's section 5).

Each stack of the project is one testbed running the same program; this reads every stack's
state (never runs or selects one) and prints one row per stack: its backend, how many hosts its
Reservations hold, how long their creation took to SSH-ready (recorded by the provider in
`testbedState.reservedSeconds`), and the chosen stack outputs. `--plot FILE` draws the numeric
outputs as grouped bars (matplotlib, as `testbed plot`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from . import stacks

STACK_TYPE = "pulumi:pulumi:Stack"
SECRET = "[secret]"


@dataclass
class Row:
    stack: str
    backend: str = ""
    hosts: int = 0
    ready_s: Optional[float] = None
    outputs: dict[str, Any] = field(default_factory=dict)


def masked(value: Any) -> Any:
    """`value` with every secret in it, however deep, replaced by SECRET (the export shows them)."""
    if isinstance(value, dict):
        if value.get(stacks.SIG) == stacks.SECRET_SIG:
            return SECRET
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def read_row(cwd: str, stack: str, wanted: Optional[list[str]]) -> Row:
    """One stack's row, from its deployment alone."""
    name, deployment = stacks.export(cwd, stack)
    row = Row(name)
    backends, ready = set(), []
    for resource in deployment.get("resources") or []:
        if resource.get("type") == stacks.RESERVATION and not resource.get("delete"):
            state = stacks.reveal((resource.get("outputs") or {}).get("testbedState") or {})
            if isinstance(state, dict):
                backends.add(str(state.get("backend", "")))
                row.hosts += len(state.get("hosts") or [])
                if isinstance(state.get("reservedSeconds"), (int, float)):
                    ready.append(float(state["reservedSeconds"]))
        if resource.get("type") == STACK_TYPE:
            outputs = resource.get("outputs") or {}
            keys = wanted if wanted is not None else sorted(outputs)
            for key in keys:
                row.outputs[key] = masked(outputs.get(key))
    row.backend = ",".join(sorted(b for b in backends if b)) or "-"
    row.ready_s = max(ready) if ready else None  # the reservations are created side by side
    return row


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else " ".join(str(value).split())
    return text if len(text) <= 40 else text[:37] + "..."  # one line per stack, however long an output


def render(rows: list[Row], keys: list[str], fmt: str) -> str:
    header = ["stack", "backend", "hosts", "ready_s", *keys]
    table = [[r.stack, r.backend, r.hosts, r.ready_s, *(r.outputs.get(k) for k in keys)] for r in rows]
    if fmt == "json":
        return json.dumps([dict(zip(header, line)) for line in table], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([[_cell(c) for c in line] for line in table])
        return out.getvalue()
    # Plain aligned columns: a table this small needs no library.
    cells = [header] + [[_cell(c) for c in line] for line in table]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n" for line in cells)


def plot(rows: list[Row], keys: list[str], path: str) -> None:
    """Grouped bars: one group per numeric column (ready_s and the numeric outputs), one bar per stack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["ready_s", *keys]
    values = {r.stack: [r.ready_s, *(r.outputs.get(k) for k in keys)] for r in rows}
    numeric = [
        i for i, _ in enumerate(columns) if any(isinstance(v[i], (int, float)) and not isinstance(v[i], bool) for v in values.values())
    ]
    if not numeric:
        raise stacks.CliError("nothing numeric to plot (pick numeric outputs with --output)")
    fig, axes = plt.subplots(1, len(numeric), figsize=(3.2 * len(numeric), 3.2), squeeze=False)
    for ax, i in zip(axes[0], numeric):
        names = list(values)
        heights = [v[i] if isinstance(v[i], (int, float)) else 0 for v in values.values()]
        ax.bar(names, heights, color=[f"C{k}" for k in range(len(names))])
        ax.set_title(columns[i])
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def compare(cwd: str, stack_list: Optional[str], outputs: Optional[list[str]], fmt: str, plot_path: Optional[str]) -> int:
    names = [s.strip() for s in stack_list.split(",") if s.strip()] if stack_list else stacks.stack_names(cwd)
    if not names:
        raise stacks.CliError(f"no stacks in {os.path.abspath(cwd)}")
    rows = [read_row(cwd, name, outputs) for name in names]
    keys = outputs if outputs is not None else sorted({k for r in rows for k in r.outputs})
    print(render(rows, keys, fmt), end="")
    if plot_path:
        plot(rows, keys, plot_path)
    return 0


def add_parser(sub: Any) -> None:
    """The `compare` subcommand (registered by cli/__init__.py; `handler` dispatches)."""
    p = sub.add_parser(
        "compare",
        help="one row per stack: backend, hosts, time to SSH-ready and the chosen outputs",
        description="Compare the same program's stacks (one per testbed) from their state alone: for each, its "
        "backend, the hosts its Reservations hold, the seconds their creation took to SSH-ready, and its outputs.",
    )
    p.add_argument("--cwd", default=".", metavar="DIR", help="the Pulumi project directory (default: .)")
    p.add_argument("--stacks", metavar="A,B,…", help="the stacks to compare (default: every stack of the project)")
    p.add_argument("--output", action="append", metavar="NAME", help="a stack output to show (repeatable; default: all)")
    p.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table")
    p.add_argument("--plot", metavar="FILE", help="also draw the numeric columns to FILE (png, svg or pdf)")
    p.set_defaults(handler=lambda args: compare(args.cwd, args.stacks, args.output, args.format, args.plot))
