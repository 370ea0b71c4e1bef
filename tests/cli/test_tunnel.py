"""`testbed tunnel` and `tunnel.forward` against the live 2-host stack: a real HTTP server on a
host's 127.0.0.1, fetched through the forward; Ctrl-C and SIGTERM end it with nothing left."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import urllib.request

import pytest

from testbed_provider.cli import stacks, tunnel

from .conftest import TESTBED

PORT = 8123
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never an environment proxy
WAIT = 60.0


@pytest.fixture(scope="module")
def web(live):
    """`python3 -m http.server` on server-1's 127.0.0.1 only (so only a forward through the host
    reaches it), serving a marker file; stopped by its pid at the end."""
    start = f"""
set -e
mkdir -p /root/www && cd /root/www && printf 'hello from %s\\n' "$(hostname)" > index.html
setsid python3 -m http.server {PORT} --bind 127.0.0.1 </dev/null >/root/www.log 2>&1 & echo $! > /root/www.pid
"""
    out = live.testbed("ssh", "server-1", "--", start)
    assert out.returncode == 0, out.stderr
    try:
        listening = f"""
import socket, sys, time
deadline = time.monotonic() + {WAIT}
while time.monotonic() < deadline:
    if any(l.split()[1].endswith(':{PORT:04X}') and l.split()[3] == '0A' for l in open('/proc/net/tcp').read().splitlines()[1:]):
        sys.exit(0)
    time.sleep(0.05)
sys.exit('http.server does not listen: ' + open('/root/www.log').read())
"""
        ready = live.testbed("ssh", "server-1", "--", f"python3 -c {shlex.quote(listening)}")
        assert ready.returncode == 0, ready.stdout + ready.stderr
        yield f"server-1:{PORT}"
    finally:
        live.testbed("ssh", "server-1", "--", "p=$(cat /root/www.pid); kill $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done")


def fetch(port: int) -> str:
    with DIRECT.open(f"http://127.0.0.1:{port}/", timeout=30) as r:
        return r.read().decode()


def listening_locally(port: int) -> bool:
    return bool(tunnel._listening_inodes(port))


def start_tunnel(live, *args: str, sigint_ignored: bool = False) -> tuple[subprocess.Popen, int]:
    """`testbed tunnel …` in the background; its local port, once it says it forwards.
    `sigint_ignored`: started as a non-interactive shell starts `cmd &`, SIGINT ignored."""
    proc = subprocess.Popen(
        [str(TESTBED), "tunnel", *args],
        cwd=live.stack.dir,
        env=live.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the first line comes once the forward accepts connections
    m = re.fullmatch(r"forwarding http://127\.0\.0\.1:(\d+)/ → (\S+) over SSH \(Ctrl-C stops\)\n", line)
    if not m:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"no forwarding line: {line!r}, stderr: {err}")
    return proc, int(m.group(1))


def end(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_tunnel_forwards_until_ctrl_c(live, web, sigint_ignored):
    proc, port = start_tunnel(live, web, sigint_ignored=sigint_ignored)
    try:
        assert fetch(port) == "hello from server-1\n"
        assert fetch(port) == "hello from server-1\n"  # a forward serves many connections
    finally:
        rc, err = end(proc, signal.SIGINT)
    assert rc == 0 and "Traceback" not in err, err
    assert not listening_locally(port), "the forward outlived `testbed tunnel`"


def test_tunnel_by_role_on_a_chosen_port_until_sigterm(live, web):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        chosen = s.getsockname()[1]
    proc, port = start_tunnel(live, f"server:{PORT}", str(chosen))
    try:
        assert port == chosen
        assert fetch(port) == "hello from server-1\n"
    finally:
        rc, err = end(proc, signal.SIGTERM)
    assert rc == 0, err
    assert not listening_locally(chosen)


def test_forward_api(live, web, monkeypatch):
    for k, v in live.env.items():
        monkeypatch.setenv(k, v)
    target = stacks.load(str(live.stack.dir), None, None)
    with tunnel.open_forward(target, "server-1", PORT) as fwd:
        assert fetch(fwd.local_port) == "hello from server-1\n"
    assert fwd.proc.returncode is not None, "the ssh outlived the with block"
    assert not listening_locally(fwd.local_port)
    with tunnel.forward(target, "server", PORT) as lp:
        assert fetch(lp) == "hello from server-1\n"
    # nothing listens on client-1's port: the forward is up, a connection through it is refused there
    with tunnel.forward(target, "client-1", PORT) as lp, pytest.raises(OSError):
        fetch(lp)


def test_tunnel_bad_input_is_one_clear_error(live, web):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        busy = taken.getsockname()[1]
        cases = [
            ((f"nope:{PORT}",), "unknown role or host `nope`"),
            (("all:80",), "`all` matches 2 hosts (server-1, client-1): name one"),
            (("server-1:99999",), "bad port `99999`: must be 1-65535"),
            (("server-1:http",), "bad port `http`: not a number"),
            (("server-1",), "bad target `server-1`: expected HOST:PORT"),
            ((web, "0"), "bad local port `0`"),
            ((web, str(busy)), f"local port {busy} on 127.0.0.1 is already in use"),
        ]
        for args, message in cases:
            out = live.testbed("tunnel", *args)
            assert out.returncode == 2 and out.stderr.startswith("testbed: error: ") and message in out.stderr, (args, out.stderr)
            assert out.stdout == "" and "Traceback" not in out.stderr
    finally:
        taken.close()
