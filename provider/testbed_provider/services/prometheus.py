"""What the Monitoring resource runs on its hosts: Prometheus' configuration, the command lines
of node-exporter and Prometheus, and the small scripts that install them, reload the collector,
read its targets' health and take a TSDB snapshot.

Everything here is text for the remote layer (`run_shell`): shell run by /bin/sh, and Python run by
the hosts' python3 (which Ansible needs on every host anyway) where HTTP is involved, since curl
or wget are not on a minimal Debian image.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import yaml

AGENT_BINARY = "prometheus-node-exporter"
COLLECTOR_BINARY = "prometheus"
PACKAGES = {AGENT_BINARY: "prometheus-node-exporter", COLLECTOR_BINARY: "prometheus"}
WORK_DIR = ".testbed/monitoring"  # under the login (or become) user's home, one directory per Monitoring
APT_LOCK_TIMEOUT = 300  # seconds apt waits for the dpkg lock (the local testbed's hosts share one dpkg)


@dataclass(frozen=True)
class Agent:
    host: str
    address: str  # on the monitoring network
    roles: tuple[str, ...] = ()


def endpoint(address: str, port: int) -> str:
    """`address:port`, with an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address and not address.startswith("[") else f"{address}:{port}"


def install_script(binaries: Sequence[str]) -> str:
    """Install the Debian packages of the binaries missing on the host (none: nothing runs),
    without letting the packages start their own daemons (policy-rc.d), then print the home
    directory the work directory is under."""
    checks = " ".join(f"{shlex.quote(b)}:{shlex.quote(PACKAGES[b])}" for b in binaries)
    return f"""
missing=
for pair in {checks}; do
  command -v "${{pair%%:*}}" >/dev/null 2>&1 || missing="$missing ${{pair#*:}}"
done
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "not installed:$missing, and this host has no apt-get to install them" >&2; exit 1
  fi
  created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\\nexit 101\\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created=1; fi
  export DEBIAN_FRONTEND=noninteractive
  lock="-o DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"
  out=$( (apt-get $lock update -qq && apt-get $lock install -y -qq --no-install-recommends $missing) 2>&1 ); rc=$?
  [ "$created" = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" -ne 0 ]; then
    printf '%s\\n' "$out" | tail -n 5 >&2
    echo "not installed:$missing, and apt-get could not install them (exit $rc)" >&2; exit 1
  fi
  echo "installed:$missing"
fi
echo "home=$HOME"
"""


# node-exporter's collectors an agent runs unless told otherwise: what EnOSlib's Telegraf agents
# report (cpu, disk, diskio, kernel, mem, processes, swap, system, net, netstat), not the ~40 of
# node-exporter's defaults. Half the CPU per scrape (measured: 4.8 ms against 9.4 ms), which a
# 1 s scrape of many hosts sharing cores (the local testbed) takes from the experiment.
DEFAULT_COLLECTORS = ("cpu", "diskstats", "filesystem", "loadavg", "meminfo", "netdev", "netstat", "stat", "time", "uname", "vmstat")


def agent_command(address: str, port: int, collectors: Sequence[str] = DEFAULT_COLLECTORS) -> str:
    """node-exporter listening on the monitoring network's address only: scrapes cannot use
    another network (the experiment's stays free of monitoring traffic)."""
    enabled = " ".join(f"--collector.{shlex.quote(c)}" for c in collectors)
    if "netdev" in collectors:  # each device's addresses (node_network_address_info): `testbed ui` matches links by them
        enabled += " --collector.netdev.address-info"
    return f"exec {AGENT_BINARY} --web.listen-address={shlex.quote(endpoint(address, port))} --collector.disable-defaults {enabled}"


def collector_command(work_dir: str, port: int, retention: str) -> str:
    """Prometheus with the admin API (snapshots) and the lifecycle API (reload without restart)."""
    return (
        f"exec {COLLECTOR_BINARY} --config.file={shlex.quote(work_dir + '/prometheus.yml')} "
        f"--storage.tsdb.path={shlex.quote(work_dir + '/data')} --storage.tsdb.retention.time={shlex.quote(retention)} "
        f"--web.listen-address=:{port} --web.enable-admin-api --web.enable-lifecycle"
    )


def _duration(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def config_text(
    collector: str, port: int, agents: Sequence[Agent], agent_port: int, interval_s: float, extra: Sequence[dict[str, Any]] = ()
) -> str:
    """prometheus.yml: one static target per agent labelled with its host name and roles (so
    queries say `host="server-1"`, not an address), the collector itself, the extra targets."""
    interval = _duration(interval_s)
    scrape: list[dict[str, Any]] = [
        {
            "job_name": "node",
            "static_configs": [
                {"targets": [endpoint(a.address, agent_port)], "labels": {"host": a.host, "roles": ",".join(a.roles)}} for a in agents
            ],
        },
        {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"host": collector}}]},
    ]
    for target in extra:
        job: dict[str, Any] = {
            "job_name": target["job"],
            "static_configs": [{"targets": list(target["targets"]), "labels": dict(target.get("labels") or {})}],
        }
        if target.get("metricsPath"):
            job["metrics_path"] = target["metricsPath"]
        scrape.append(job)
    timeout = _duration(min(interval_s, 10.0))
    return yaml.safe_dump({"global": {"scrape_interval": interval, "scrape_timeout": timeout}, "scrape_configs": scrape}, sort_keys=False)


def write_config_script(work_dir: str, text: str) -> str:
    """Write prometheus.yml atomically (base64 through the shell: no quoting of YAML)."""
    b64 = base64.b64encode(text.encode()).decode()
    d = shlex.quote(work_dir)
    return f"mkdir -p {d}/data && printf %s {b64} | base64 -d >{d}/prometheus.yml.new && mv -f {d}/prometheus.yml.new {d}/prometheus.yml"


def _python(code: str) -> str:
    """Run `code` under the host's python3 (given on the command line, nothing written)."""
    return f"exec python3 -c {shlex.quote(code)}"


READY_CODE = """
import sys, urllib.request
try:
    urllib.request.urlopen('http://127.0.0.1:%d/-/ready', timeout=2).read()
except Exception as err:
    sys.exit(str(err))
"""


def ready_command(port: int) -> str:
    """Exits 0 once Prometheus says it is ready (its TSDB opened, its config loaded)."""
    return _python(READY_CODE % port)


TARGETS_CODE = """
import json, sys, urllib.request
try:
    data = json.load(urllib.request.urlopen('http://127.0.0.1:%d/api/v1/targets?state=active', timeout=10))
except Exception as err:
    sys.exit('Prometheus does not answer: %%s' %% err)
print(json.dumps([{'host': t['labels'].get('host', ''), 'job': t['labels'].get('job', ''), 'endpoint': t['labels'].get('instance', ''),
                   'health': t.get('health', 'unknown'), 'lastError': t.get('lastError') or ''} for t in data['data']['activeTargets']]))
"""


def targets_command(port: int) -> str:
    """Print the collector's active targets (host, job, endpoint, health, last error) as JSON:
    one look (the resource polls it, with progress)."""
    return _python(TARGETS_CODE % port)


NOT_ANSWERING = 3  # reload_command's exit status when nothing answers on the port
RELOAD_CODE = """
import sys, urllib.error, urllib.request
req = urllib.request.Request('http://127.0.0.1:%d/-/reload', method='POST')
try:
    urllib.request.urlopen(req, timeout=30).read()
except urllib.error.HTTPError as err:
    sys.exit('Prometheus refused the new configuration: ' + err.read().decode(errors='replace').strip())
except OSError as err:
    print('Prometheus does not answer:', err, file=sys.stderr)
    sys.exit(%d)
"""


def reload_command(port: int) -> str:
    """Ask Prometheus to re-read its configuration (the lifecycle API; no restart, data kept)."""
    return _python(RELOAD_CODE % (port, NOT_ANSWERING))


SNAPSHOT_CODE = """
import json, sys, time, urllib.error, urllib.parse, urllib.request
port, limit = %d, %f
base = 'http://127.0.0.1:%%d/api/v1/' %% port
began = time.time()
# First every target scraped once more: what happened until now (a measurement that just ended)
# is then all in the snapshot, not cut at the last scrape before it.
query = base + 'query?' + urllib.parse.urlencode({'query': 'min(timestamp(up))'})
while True:
    try:
        result = json.load(urllib.request.urlopen(query, timeout=10))['data']['result']
        if result and float(result[0]['value'][1]) >= began:
            break
    except (OSError, ValueError, KeyError):
        pass
    if time.time() - began > limit:
        print('warning: not every target was scraped again within %%g s; the snapshot ends at the last scrapes' %% limit, file=sys.stderr)
        break
    time.sleep(0.2)
req = urllib.request.Request(base + 'admin/tsdb/snapshot', method='POST')
try:
    print(json.load(urllib.request.urlopen(req, timeout=300))['data']['name'])
except urllib.error.HTTPError as err:
    sys.exit('snapshot refused: ' + err.read().decode(errors='replace').strip())
"""


def snapshot_command(port: int, scrape_interval_s: float = 1.0) -> str:
    """Wait until every target was scraped after now (at most a few scrape intervals), then take an
    online TSDB snapshot (hard links of the blocks, the head block written out): prints its name."""
    return _python(SNAPSHOT_CODE % (port, max(10.0, 5 * scrape_interval_s)))


FORWARD_CODE = """
import asyncio
# A TCP forwarder, because the UI host may lack socat or any proxy: Python's asyncio streams are
# all it takes, and python3 is on every host Ansible drives.
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def serve(r, w):
    try:
        ur, uw = await asyncio.open_connection(%r, %d)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)
async def main():
    server = await asyncio.start_server(serve, None, %d)
    await server.serve_forever()
asyncio.run(main())
"""


def forwarder_command(collector_address: str, port: int, listen_port: int) -> str:
    """On a UI host that is not the collector: pass `listen_port` on to the collector's UI."""
    return _python(FORWARD_CODE % (collector_address, port, listen_port))


def parse_targets(stdout: str) -> list[dict[str, Any]]:
    """targets_command's output as AgentTarget outputs (the last error only when there is one)."""
    out = []
    for t in json.loads(stdout.strip().splitlines()[-1]):
        entry = {k: t[k] for k in ("host", "job", "endpoint", "health")}
        if t.get("lastError"):
            entry["lastError"] = t["lastError"]
        out.append(entry)
    return sorted(out, key=lambda t: (t["job"] != "node", t["job"], t["host"], t["endpoint"]))


def home_of(stdout: str) -> Optional[str]:
    for line in stdout.splitlines():
        if line.startswith("home="):
            return line[5:]
    return None
