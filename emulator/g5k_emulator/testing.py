"""Test helper: the emulator's CLI as a subprocess, plus a python-grid5000 config file for it.

    with EmulatorProcess(tmp_path, clock_speed=3600) as emu:
        gk = Grid5000.from_yaml(emu.config_file)
        emu.control("POST", "clock", {"advance": 3600})
        emu.restart()           # same state file, new process (and new port)

Options map to the CLI flags: clock_speed, users (list of "NAME:PASSWORD[:PUBKEYFILE]"),
hosts (True/False; default False), deploy_seconds, extra_args (list).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import yaml

from testbed_provider.common import deadlines, processes
from testbed_provider.common.private_files import write_private

START_TIMEOUT = 30.0


class EmulatorProcess:
    def __init__(
        self,
        tmp_path: Any,
        clock_speed: float = 1.0,
        users: Optional[list[str]] = None,
        hosts: bool = False,
        deploy_seconds: Optional[float] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        timeout: float = 30.0,
        extra_args: Optional[list[str]] = None,
    ):
        self.dir = Path(tmp_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file = str(self.dir / "emulator.sqlite")
        self.config_file = str(self.dir / "python-grid5000.yaml")
        self.log_file = str(self.dir / "emulator.log")
        self.clock_speed = clock_speed
        self.users = users or ["alice:x"]
        first = self.users[0].split(":")
        self.username = username or first[0]
        self.password = password or first[1]
        self.hosts = hosts
        self.deploy_seconds = deploy_seconds
        self.timeout = timeout
        self.extra_args = extra_args or []
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.url = ""

    # ---- process ---------------------------------------------------------------------------

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "g5k_emulator",
            "--port",
            "0",
            "--state",
            self.state_file,
            "--clock-speed",
            str(self.clock_speed),
            "--hosts" if self.hosts else "--no-hosts",
            "--run-dir",
            str(self.dir / "run"),
        ]
        for u in self.users:
            argv += ["--user", u]
        if self.deploy_seconds is not None:
            argv += ["--deploy-seconds", str(self.deploy_seconds)]
        return argv + self.extra_args

    def start(self) -> "EmulatorProcess":
        if self.proc is not None and self.proc.poll() is None:
            # A second start would drop the handle of a live emulator (and its namespaces and
            # DHCP server with it): stop() or restart() first.
            raise RuntimeError(f"the emulator already runs (pid {self.proc.pid}): stop() or restart() it first")
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {self.log_tail()}")
        self.url = line
        self.write_config()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> Optional[int]:
        """Stop the process (TERM: clean stop; KILL: a crash) and return its exit code."""
        if self.proc is None:
            return None
        code = processes.reap_sync(self.proc, timeout, sig)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        return code

    OPTIONS = ("clock_speed", "users", "hosts", "deploy_seconds", "extra_args")

    def restart(self, sig: int = signal.SIGTERM, **changes: Any) -> "EmulatorProcess":
        """Stop (TERM: clean; KILL: a crash) and start again on the same state file, optionally
        with other options (`clock_speed`, `users`, `hosts`, `deploy_seconds`, `extra_args`)."""
        unknown = set(changes) - set(self.OPTIONS)
        if unknown:
            raise TypeError(f"restart() cannot change {', '.join(sorted(unknown))}")
        self.stop(sig)
        for name, value in changes.items():
            setattr(self, name, value)
        return self.start()

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return Path(self.log_file).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "EmulatorProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- clients ---------------------------------------------------------------------------

    def write_config(self) -> None:
        """A python-grid5000 YAML config pointing at this emulator."""
        config = {"uri": self.url, "username": self.username, "password": self.password, "verify_ssl": False, "timeout": self.timeout}
        write_private(self.config_file, yaml.safe_dump(config))  # it holds a password

    @property
    def root(self) -> str:
        return self.url.rsplit("/", 1)[0]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the control API (`/_emulator/<path>`); returns the decoded JSON (None if empty)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.root}/_emulator/{path.lstrip('/')}", data=data, method=method.upper(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} /_emulator/{path}: {err.code} {err.read().decode(errors='replace')}") from None
        return json.loads(raw) if raw else None

    def now(self) -> float:
        return float(self.control("GET", "clock")["now"])

    def advance(self, seconds: float) -> Any:
        return self.control("POST", "clock", {"advance": seconds})

    def wait_for(self, predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
        """Poll `predicate()` until it returns something truthy (returned), or fail after `timeout`."""
        deadline = deadlines.after(timeout)
        while True:
            value = predicate()
            if value:
                return value
            if deadlines.passed(deadline):
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)


def grid5000_client(emu: EmulatorProcess) -> Any:
    """A python-grid5000 client loaded from the emulator's config file (checked: from_yaml falls
    back to the real API silently on a bad file)."""
    from grid5000 import Grid5000

    gk = Grid5000.from_yaml(emu.config_file)
    if not str(getattr(gk, "_uri", "")).startswith(emu.url):
        raise RuntimeError(f"python-grid5000 did not load {emu.config_file}")
    return gk
