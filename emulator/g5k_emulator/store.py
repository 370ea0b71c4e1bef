"""Persistence: every job, deployment, vlan assignment and counter in one sqlite file.

The emulator keeps its state in memory and writes each changed object through to the file
(one JSON document per object), so a restarted emulator with the same `--state FILE` resumes the
same jobs, deployments and vlans. sqlite (stdlib) gives atomic commits without a server.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from typing import Any, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL,
                                    PRIMARY KEY (kind, key));
"""


class Store:
    def __init__(self, path: Optional[str]):
        """`path` None keeps everything in memory (nothing survives a restart)."""
        self.path = path
        self._lock: Optional[int] = None
        if path:
            # One emulator per state file: two would each believe they own the same jobs.
            self._lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock)
                raise ValueError(f"the state file {path} is in use by another emulator") from None
        self._db = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def put(self, kind: str, key: str, data: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO objects (kind, key, data) VALUES (?, ?, ?)", (kind, str(key), json.dumps(data, sort_keys=True))
        )

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, str(key)))

    def get(self, kind: str, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT data FROM objects WHERE kind = ? AND key = ?", (kind, str(key))).fetchone()
        return json.loads(row[0]) if row else default

    def load(self, kind: str) -> dict[str, Any]:
        return {k: json.loads(d) for k, d in self._db.execute("SELECT key, data FROM objects WHERE kind = ?", (kind,))}

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None
