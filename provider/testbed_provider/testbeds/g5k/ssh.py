"""Reaching deployed nodes: wait until root answers SSH through the ProxyCommand and record
the host key the node presented (trust on first use at reservation time, so every later step
checks keys strictly). `ssh-keyscan` cannot use a ProxyCommand, so a real `ssh ... true` with
`StrictHostKeyChecking=accept-new` into a private known_hosts file does both jobs at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Optional

from .session import Cancelled


def ssh_argv(host: str, user: str, key_path: str, known_hosts: str, proxy_command: str, command: str = "true") -> list[str]:
    return [
        "ssh", "-i", key_path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=accept-new", "-o", "HashKnownHosts=no", "-o", "ConnectTimeout=10",
        "-o", f"ProxyCommand={proxy_command}", "-o", "LogLevel=ERROR", f"{user}@{host}", command,
    ]


async def wait_and_pin(host: str, user: str, key_path: str, workdir: str, proxy_command: str, timeout: float,
                       stop: asyncio.Event) -> str:
    """Retry `ssh host true` (1 s, 2 s, … 10 s apart) until it works; return the host's key
    (`<type> <base64>`). Raises TimeoutError with ssh's last complaint, Cancelled when stopped."""
    known = os.path.join(workdir, f"known_hosts.{host}")
    deadline = time.monotonic() + timeout
    delay, last = 1.0, ""
    while True:
        if stop.is_set():
            raise Cancelled()
        proc = await asyncio.create_subprocess_exec(
            *ssh_argv(host, user, key_path, known, proxy_command), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            err = b"ssh did not finish within 30 s"
        except asyncio.CancelledError:  # a sibling host failed: leave no ssh behind
            if proc.returncode is None:
                proc.kill()
            raise
        if proc.returncode == 0:
            key = _key_of(known, host)
            if key:
                return key
            last = "connected but no host key was recorded"
        else:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            last = last[0]
        if time.monotonic() + delay > deadline:
            raise TimeoutError(f"{host} did not answer SSH as {user} within {timeout:g} s: {last}")
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            raise Cancelled()
        except asyncio.TimeoutError:
            pass
        delay = min(delay * 2, 10.0)


def _key_of(known_hosts: str, host: str) -> Optional[str]:
    try:
        with open(known_hosts) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and host in parts[0].split(","):
                    return f"{parts[1]} {parts[2]}"
    except OSError:
        return None
    return None
