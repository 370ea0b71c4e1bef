"""Writing files that may hold secrets (private keys, passwords, connection data).

One way for all of them, with the strongest guarantees any caller needed:
- atomic: the content goes to a fresh temporary file in the same directory, which then
  replaces the target (`rename`), so a concurrent reader sees the old file or the new one,
  never half a key, and a crash leaves no truncated file;
- private from the start: the temporary file is created with mode 0600 (never briefly readable
  by others, whatever the umask) and only then given the mode asked for;
- no symlink following: the temporary name is created exclusively (`O_EXCL | O_NOFOLLOW`), and
  `rename` replaces a symlink at the target instead of writing through it.
"""

from __future__ import annotations

import os
import secrets
from typing import Union


def write_private(path: str, data: Union[str, bytes], mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically; the result has exactly `mode` (default 0600)."""
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                os.fchmod(f.fileno(), mode)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(dir_fd)


def unlink_quietly(path: str) -> None:
    """Remove `path` if it exists (a private file whose work is done)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
