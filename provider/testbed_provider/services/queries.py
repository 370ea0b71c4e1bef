"""The PromQL of the standard views (throughput, CPU, memory), in one place.

`testbed plot` draws them and the Monitoring resource's `queries` output links to them, so a
graph in Prometheus' UI and a figure from `testbed plot` show the same expression. The series
are node-exporter's, scraped by the `node` job with a `host` label (the inventory host name).
`host` and `device` are Prometheus regular expressions (anchored, as `=~` is): `server-.*`,
`eth1|eth2`.
"""

from __future__ import annotations

from typing import Optional

NODE_JOB = "node"
DIRECTIONS = {"receive": "receive", "rx": "receive", "transmit": "transmit", "tx": "transmit"}


def rate_window(scrape_interval_s: float, step_s: float = 0.0) -> int:
    """Seconds of a `rate()` window: at least 4 scrapes (a rate needs two samples, and scrapes
    jitter), and at least a step plus a scrape so consecutive points leave no sample out
    (Grafana's `$__rate_interval`). Whole seconds, for readable queries."""
    return max(int(-(-max(4 * scrape_interval_s, step_s + scrape_interval_s) // 1)), 1)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(host: Optional[str] = None, device: Optional[str] = None, **exact: str) -> str:
    """`{job="node",host=~"…",…}`. Without `device`, the loopback interface is left out."""
    parts = [f"job={_quote(NODE_JOB)}"]
    parts += [f"{k}={_quote(v)}" for k, v in exact.items()]
    if host:
        parts.append(f"host=~{_quote(host)}")
    if device:
        parts.append(f"device=~{_quote(device)}")
    return "{" + ",".join(parts) + "}"


def throughput(direction: str, rate_window_s: float, host: Optional[str] = None, device: Optional[str] = None) -> str:
    """Bits per second per host and interface, received (`receive`/`rx`) or sent (`transmit`/`tx`)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})")
    sel = selector(host, device or None)
    if not device:
        sel = sel[:-1] + ',device!="lo"}'
    return f"rate(node_network_{DIRECTIONS[direction]}_bytes_total{sel}[{int(rate_window_s)}s]) * 8"


def cpu_busy(rate_window_s: float, host: Optional[str] = None) -> str:
    """Percent of CPU time not idle per host, over all its CPUs (on the local testbed hosts share
    one kernel, so every host shows the machine's)."""
    sel = selector(host, mode="idle")
    return f"100 * (1 - avg by (host) (rate(node_cpu_seconds_total{sel}[{int(rate_window_s)}s])))"


def memory_used(host: Optional[str] = None) -> str:
    """Bytes of memory in use per host: total minus available (what `free` calls used + unreclaimable cache)."""
    sel = selector(host)
    return f"max by (host) (node_memory_MemTotal_bytes{sel} - node_memory_MemAvailable_bytes{sel})"
