"""Test helper: the OpenStack emulator's CLI as a subprocess.

with OpenStackEmulatorProcess(tmp_path, hosts=True, boot_seconds=0) as emu:
    conn = openstack.connect(auth_url=emu.auth_url, ..., **emu.app_credential)
    emu.control("POST", "clock", {"advance": 3600})
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from testbed_provider.common import processes

from .cloud import Config

START_TIMEOUT = 30.0


class OpenStackEmulatorProcess:
    def __init__(
        self,
        tmp_path: Any,
        hosts: bool = False,
        clock_speed: float = 1.0,
        boot_seconds: float = 0.0,
        lease_start_seconds: float = 0.0,
        extra_args: Optional[list[str]] = None,
    ) -> None:
        self.dir = Path(tmp_path)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file = str(self.dir / "emulator.sqlite")
        self.log_file = str(self.dir / "emulator.log")
        self.hosts = hosts
        self.clock_speed = clock_speed
        self.boot_seconds = boot_seconds
        self.lease_start_seconds = lease_start_seconds
        self.extra_args = extra_args or []
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.auth_url = ""
        defaults = Config()
        self.region = defaults.region
        cred = defaults.app_credentials[0]
        self.app_credential = {"application_credential_id": cred.id, "application_credential_secret": cred.secret}

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "openstack_emulator",
            "--port",
            "0",
            "--state",
            self.state_file,
            "--clock-speed",
            str(self.clock_speed),
            "--boot-seconds",
            str(self.boot_seconds),
            "--lease-start-seconds",
            str(self.lease_start_seconds),
            "--hosts" if self.hosts else "--no-hosts",
            "--run-dir",
            str(self.dir / "run"),
            *self.extra_args,
        ]

    def start(self) -> "OpenStackEmulatorProcess":
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {self.log_tail()}")
        self.auth_url = line
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> Optional[int]:
        if self.proc is None:
            return None
        code = processes.reap_sync(self.proc, timeout, sig)
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        return code

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return Path(self.log_file).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> "OpenStackEmulatorProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def root(self) -> str:
        return self.auth_url.rsplit("/v3", 1)[0]

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.root}/_emulator/{path.lstrip('/')}", data=data, method=method.upper(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} /_emulator/{path}: {err.code} {err.read().decode(errors='replace')}") from None
        return json.loads(raw) if raw else None

    def provider_config(self) -> dict[str, str]:
        """`testbed:chameleon*` stack settings for this emulator (the secret among them)."""
        ssh = self.control("GET", "ssh")
        return {
            "testbed:chameleonAuthUrl": self.auth_url,
            "testbed:chameleonRegion": self.region,
            "testbed:chameleonApplicationCredentialId": self.app_credential["application_credential_id"],
            "testbed:chameleonApplicationCredentialSecret": self.app_credential["application_credential_secret"],
            "testbed:chameleonSshUser": ssh["user"],
            "testbed:chameleonSshProxyCommand": ssh["proxyCommand"] or "",
        }
