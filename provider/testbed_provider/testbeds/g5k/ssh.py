"""Reaching deployed nodes: wait until root answers SSH through the ProxyCommand and record
the host key the node presented (trust on first use at reservation time, so every later step
checks keys strictly). `ssh-keyscan` cannot use a ProxyCommand, so a real `ssh ... true` with
`StrictHostKeyChecking=accept-new` into a private known_hosts file does both jobs at once.
"""

from __future__ import annotations

import asyncio
import os
from typing import Optional

from ...common import deadlines, processes
from .session import Cancelled

ATTEMPT_TIMEOUT = 30.0  # seconds one `ssh … true` may take


def ssh_options(key_path: str, known_hosts: str, proxy_command: str, strict: bool = False) -> list[str]:
    """Options every connection to the reservation's machines takes (ssh and scp alike); an
    empty `proxy_command` connects directly. `strict`: a host not in `known_hosts` is refused
    (else it is added: trust on first use); a host whose key differs is refused either way."""
    options = {
        "IdentitiesOnly": "yes",
        "BatchMode": "yes",
        "UserKnownHostsFile": known_hosts,
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes" if strict else "accept-new",
        "HashKnownHosts": "no",
        "ConnectTimeout": "10",
        "ProxyCommand": proxy_command or "none",
        "LogLevel": "ERROR",
    }
    return ["-i", key_path] + [w for k, v in options.items() for w in ("-o", f"{k}={v}")]


def ssh_argv(
    host: str,
    user: str,
    key_path: str,
    known_hosts: str,
    proxy_command: str,
    command: str = "true",
    port: int = 22,
    strict: bool = False,
) -> list[str]:
    return ["ssh", *ssh_options(key_path, known_hosts, proxy_command, strict), "-p", str(port), f"{user}@{host}", command]


class HostKeyRefused(Exception):
    """The host presented a key its known_hosts lines do not allow: never retried."""


def scp_argv(source: str, host: str, user: str, target: str, key_path: str, known_hosts: str, proxy_command: str) -> list[str]:
    return ["scp", "-q", *ssh_options(key_path, known_hosts, proxy_command), source, f"{user}@{host}:{target}"]


async def wait_and_pin(
    host: str,
    user: str,
    key_path: str,
    workdir: str,
    proxy_command: str,
    timeout: float,
    stop: asyncio.Event,
    port: int = 22,
    known_text: str = "",
    strict: bool = False,
) -> str:
    """Retry `ssh host true` (1 s, 2 s, … 10 s apart) until it works; return the host's key
    (`<type> <base64>`; "" when `strict` and the allowed line is not one we can read, e.g. a
    hashed one). `known_text`: lines the host's key is checked against before anything runs
    there. Raises TimeoutError with ssh's last complaint, HostKeyRefused at once on a key those
    lines refuse, Cancelled when stopped."""
    target = host if port == 22 else f"[{host}]:{port}"
    known = os.path.join(workdir, f"known_hosts.{host}" + ("" if port == 22 else f".{port}"))
    with open(known, "w") as f:
        f.write(known_text)
    deadline = deadlines.after(timeout)
    delay, last = 1.0, ""
    while True:
        # The user's own environment: the ProxyCommand (`ssh -W … access.grid5000.fr`) needs
        # their SSH agent and config. Killed (never left behind) when a sibling host fails.
        done = await processes.run(
            ssh_argv(host, user, key_path, known, proxy_command, port=port, strict=strict),
            env=None,
            deadline=deadlines.after(ATTEMPT_TIMEOUT),
            cancelled=stop,
        )
        if done.outcome == processes.CANCELLED:
            raise Cancelled()
        if done.outcome == processes.EXITED and done.returncode == 0:
            key = _key_of(known, target)
            if key or strict:
                return key or ""
            last = "connected but no host key was recorded"
        elif done.outcome == processes.TIMED_OUT:
            last = f"ssh did not finish within {ATTEMPT_TIMEOUT:g} s"
        else:
            text = done.stderr.decode(errors="replace")
            if "Host key verification failed" in text or "HOST IDENTIFICATION HAS CHANGED" in text:
                offered = " ".join(line.strip() for line in text.splitlines() if "key for" in line or "fingerprint" in line)
                raise HostKeyRefused(f"{target} presented a host key its known hosts do not allow" + (f" ({offered})" if offered else ""))
            lines = text.strip().splitlines()
            last = lines[-1] if lines else f"exit {done.returncode}"
        left = deadlines.remaining(deadline)
        if left is not None and left < delay:
            raise TimeoutError(f"{host} did not answer SSH as {user} within {timeout:g} s: {last}")
        await deadlines.sleep(delay, stop)
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
