"""SSH keys: one ed25519 client key per reservation, one ed25519 host key per host.

Generated with ssh-keygen (no passphrase) so the files are exactly what OpenSSH expects; key
text is never put in a message or a progress line.
"""

from __future__ import annotations

import asyncio
import os
from typing import Optional

from ..common.private_files import unlink_quietly
from .commands import run

HOST_KEY = "ssh_host_ed25519_key"


async def generate(path: str, comment: str, cancelled: Optional[asyncio.Event]) -> None:
    """Write `path` (private, 0600) and `path.pub`; an existing pair is replaced."""
    for old in (path, path + ".pub"):
        unlink_quietly(old)
    await run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
        what=f"generating the SSH key {os.path.basename(path)} ({comment})",
        cancelled=cancelled,
    )


def read_public(path: str) -> str:
    """`<type> <base64>` of a public key file (comment dropped)."""
    with open(path) as f:
        return " ".join(f.read().split()[:2])


def known_hosts_line(name: str, address: str, public_key: str) -> str:
    return f"{name},{address} {public_key}"


def parse_known_hosts(text: str) -> dict[str, str]:
    """Host name → `<type> <base64>` from known_hosts text written by known_hosts_line."""
    keys: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            keys[parts[0].split(",")[0]] = f"{parts[1]} {parts[2]}"
    return keys
