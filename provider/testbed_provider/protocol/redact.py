"""Scrubs secret values out of every text the provider shows (engine logs, error messages).

The codec registers each secret it decodes or encodes; resources register credentials they
generate. Anything sent to the engine as text goes through `REDACTOR.scrub` first, so a secret
that ends up in a command's stderr or an exception message is never shown in plaintext.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

_MIN_LEN = 6  # shorter strings would scrub ordinary words; such short secrets are not credentials
MASK = "[secret]"


class Redactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._public: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: Any) -> None:
        """Remember every string inside `value` (and each line of multi-line ones, e.g. keys)."""
        for text in _strings(value):
            candidates = {text, text.strip()} | {line.strip() for line in text.splitlines()}
            with self._lock:
                self._secrets.update(c for c in candidates if len(c) >= _MIN_LEN)

    def declassify(self, value: Any) -> None:
        """Mark the strings inside `value` as public although they arrived inside a secret.

        Pulumi makes a whole object secret when one field is (a Reservation's `inventory` is
        secret for its private key alone), so host names, addresses and roles arrive as
        secrets too; scrubbing them would turn every message about a host into `[secret]`.
        The resource that knows the object's schema declares its public parts here."""
        with self._lock:
            self._public.update(t for t in _strings(value))

    def scrub(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets - self._public, key=len, reverse=True)
        for s in secrets:
            if s in text:
                text = text.replace(s, MASK)
        return text


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif hasattr(value, "value"):  # a Secret wrapper
        yield from _strings(value.value)


REDACTOR = Redactor()
