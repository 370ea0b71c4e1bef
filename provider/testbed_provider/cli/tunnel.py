"""`testbed tunnel HOST:PORT [LOCAL_PORT]`, and `forward()`: a local port forwarded to a host's port.

Other commands (`testbed metrics`, `testbed ui`) reach services on the hosts the same way: one
`ssh -N -L` on the CLI's generated ssh_config (the reservation's key, pinned known_hosts and
ProxyCommand, see cache.py), so nothing needs a route to the hosts' addresses.

The forward is its own SSH connection (`ControlMaster=no`, `ControlPath=none`): through a
shared ControlMaster the listening socket would belong to the master and outlive this process
(until ControlPersist), and the port would stay taken after the `with` block. Readiness is the
condition itself: the ssh process holds a listening socket on the local port (read from /proc,
without a probe connection that would reach the remote service). The ssh gets SIGTERM when the
thread that started it dies (PR_SET_PDEATHSIG), so even a SIGKILLed `testbed` leaves no tunnel.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Iterator, Optional

from . import stacks
from .cache import files_for
from .ssh import pick_host

READY_TIMEOUT = 30.0  # seconds: the ssh_config's ConnectTimeout (10 s) plus authentication, on a busy machine
POLL = 0.02  # seconds between two looks at whether the listening socket is there yet
PORT_RETRIES = 3  # a free port chosen by us may be taken before ssh binds it: choose again


@dataclass
class Forward:
    """A running forward: the local port, and the ssh process that holds it."""

    host: str
    port: int
    local_port: int
    bind: str
    proc: subprocess.Popen
    stderr: IO[bytes]

    def error_text(self) -> str:
        self.stderr.seek(0)
        lines = [ln.strip() for ln in self.stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return "; ".join(lines[-4:]) or f"ssh exited with status {self.proc.returncode}"


def parse_port(text: str, what: str = "port") -> int:
    """A TCP port 1-65535 (0 where a free port may be chosen is the caller's business)."""
    try:
        port = int(text, 10)
    except ValueError:
        raise stacks.CliError(f"bad {what} `{text}`: not a number") from None
    if not 0 < port < 65536:
        raise stacks.CliError(f"bad {what} `{text}`: must be 1-65535")
    return port


def parse_endpoint(text: str) -> tuple[str, int]:
    """`HOST:PORT` (a host name or one-host role; no address: the host's own 127.0.0.1 is the target)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise stacks.CliError(f"bad target `{text}`: expected HOST:PORT (e.g. server-1:9090)")
    return host, parse_port(port)


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _check_free(bind: str, port: int) -> int:
    """`port` on `bind` if it can be listened on now (0: a free one, chosen by the kernel)."""
    with socket.socket(_family(bind), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ssh binds: a TIME_WAIT leftover is no conflict
        try:
            s.bind((bind, port))
            s.listen(1)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise stacks.CliError(f"local port {port} on {bind} is already in use: pick another LOCAL_PORT") from None
            raise stacks.CliError(f"cannot listen on {bind}:{port}: {err.strerror or err}") from None
        return int(s.getsockname()[1])


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP `port` in this network namespace (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def _holds_listener(pid: int, port: int) -> bool:
    """Whether process `pid` has a socket listening on `port`: the forward accepts connections."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def die_with_parent(parent: int) -> None:
    """In the child before exec: SIGTERM when the parent goes, so no tunnel outlives `testbed`."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(target: stacks.Target, name: str, port: int, local_port: int, bind: str, remote_address: str) -> Forward:
    files = files_for(target.inventory, target.origin)
    argv = [
        "ssh",
        "-F",
        files.ssh_config,
        "-N",
        "-T",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-L",
        f"{_bracket(bind)}:{local_port}:{_bracket(remote_address)}:{port}",
        "--",
        name,
    ]
    stderr = tempfile.TemporaryFile()  # a file, not a pipe: a long-lived ssh must never block on a full pipe
    parent = os.getpid()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # Ctrl-C in a terminal reaches `testbed`, which then stops ssh itself
            preexec_fn=lambda: die_with_parent(parent),
        )
    except OSError as err:
        stderr.close()
        raise stacks.CliError(f"could not start ssh: {err.strerror or err}") from None
    return Forward(name, port, local_port, bind, proc, stderr)


def _wait_ready(fwd: Forward, deadline: float) -> bool:
    """True once ssh listens on the local port; False if ssh exited first. Raises after the deadline."""
    while True:
        if fwd.proc.poll() is not None:
            return False
        if _holds_listener(fwd.proc.pid, fwd.local_port):
            return True
        if time.monotonic() > deadline:
            raise stacks.CliError(f"the SSH forward to {fwd.host}:{fwd.port} was not up after {READY_TIMEOUT:.0f} s")
        time.sleep(POLL)


@contextlib.contextmanager
def open_forward(
    target: stacks.Target,
    host: str,
    port: int,
    local_port: int = 0,
    bind: str = "127.0.0.1",
    remote_address: str = "127.0.0.1",
    timeout: float = READY_TIMEOUT,
) -> Iterator[Forward]:
    """Like `forward`, yielding the running Forward (its ssh process too, to notice it dying)."""
    name = pick_host(target, host)
    if not 0 < port < 65536:
        raise stacks.CliError(f"bad port {port}: must be 1-65535")
    if not 0 <= local_port < 65536:
        raise stacks.CliError(f"bad local port {local_port}: must be 0-65535")
    deadline = time.monotonic() + timeout
    for attempt in range(PORT_RETRIES):
        chosen = _check_free(bind, local_port)
        fwd = _start(target, name, port, chosen, bind, remote_address)
        try:
            if _wait_ready(fwd, deadline):
                yield fwd
                return
            text = fwd.error_text()
            if local_port == 0 and "already in use" in text and attempt + 1 < PORT_RETRIES:
                continue  # someone took the free port between our check and ssh's bind
            raise stacks.CliError(f"could not forward {bind}:{chosen} to {name}:{port} over SSH: {text}")
        finally:
            _stop(fwd.proc)
            fwd.stderr.close()


@contextlib.contextmanager
def forward(
    target: stacks.Target,
    host: str,
    port: int,
    local_port: int = 0,
    bind: str = "127.0.0.1",
    remote_address: str = "127.0.0.1",
    timeout: float = READY_TIMEOUT,
) -> Iterator[int]:
    """Forward bind:local_port (0: a free port) to `remote_address:port` as seen from `host` (a host
    name of the reservation, or a role with exactly one host, like `testbed ssh`), over the
    reservation's SSH; yields the local port once it accepts connections, stops the ssh on exit.
    Raises stacks.CliError for an unknown host, a bad or taken port, or an SSH failure."""
    with open_forward(target, host, port, local_port, bind, remote_address, timeout) as fwd:
        yield fwd.local_port


class _Stop(Exception):
    """SIGINT or SIGTERM, turned into an exception so the `with` block stops the ssh."""


def tunnel(target: stacks.Target, endpoint: str, local_port: Optional[str], bind: str = "127.0.0.1") -> int:
    """The `testbed tunnel` command: forward until SIGINT/SIGTERM (exit 0), or until SSH drops (exit 1)."""
    host, port = parse_endpoint(endpoint)
    lport = parse_port(local_port, "local port") if local_port is not None else 0

    def on_term(signum: int, frame: object) -> None:
        raise _Stop()

    # Both set here, not inherited: a process started in the background by a non-interactive
    # shell (a CI script's `cmd &`) inherits SIGINT ignored, and Python then keeps it ignored.
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_forward(target, host, port, lport, bind) as fwd:
            print(f"forwarding http://{_bracket(bind)}:{fwd.local_port}/ → {host}:{port} over SSH (Ctrl-C stops)", flush=True)
            fwd.proc.wait()
            print(f"testbed: the SSH connection to {fwd.host} ended: {fwd.error_text()}", file=sys.stderr)
            return 1
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """The `tunnel` subcommand (registered by cli/__init__.py; `args.run` dispatches)."""
    p = sub.add_parser(
        "tunnel",
        parents=[common],
        help="forward a local port to a port on one host, over SSH",
        description="Forward 127.0.0.1:LOCAL_PORT (default: a free port) to PORT on HOST (its own 127.0.0.1) over the "
        "reservation's SSH, until Ctrl-C or SIGTERM: e.g. `testbed tunnel server-1:9090` for a Prometheus UI.",
    )
    p.add_argument("endpoint", metavar="HOST:PORT", help="a host name (or a role with exactly one host) and a port")
    p.add_argument("local_port", nargs="?", metavar="LOCAL_PORT", help="the local port (default: a free one)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDRESS", help="the local address to listen on (default: 127.0.0.1)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    return tunnel(stacks.load(args.cwd, args.stack, args.reservation), args.endpoint, args.local_port, args.bind)
