"""Ansible host patterns over an inventory, resolved by ansible-core itself, in-process.

Steps target hosts with Ansible patterns (`server`, `client:!server`, `server:&rack1`, `web*`,
`~regex`, `group[0:2]`, host names). Re-implementing that grammar would drift from what a play
run by Ansible selects, so the inventory is loaded into ansible-core's own InventoryManager
(from memory, no file, no subprocess) and asked. On top of Ansible, two things are stricter:
a literal name that is neither a role nor a host is an error (Ansible only warns and ignores it,
which turns a typo into "ran on fewer hosts"), and so is a pattern that selects nothing.

Importing ansible costs ~0.3 s, so it happens on first use, never at plugin start-up; the
manager and every resolved pattern are cached per inventory shape (names and groups).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any, Optional

from .api import PatternError
from .inventory import Host, Inventory, parse

CACHE_SIZE = 32  # inventory shapes kept (one per reservation version seen by this process)
GLOB_CHARS = ("*", "?", "[")
SHOWN = 12  # names listed in an error message

_lock = threading.Lock()
# Every import of ansible-core in this process goes under this lock: warm-ups import it from
# threads while Check may need it on the event loop, and ansible's collection loader imports
# modules from inside import hooks, which deadlocks on Python's per-module import locks when
# two threads interleave (seen: Play's module lookup against a warm-up).
IMPORT_LOCK = threading.RLock()
_cache: "OrderedDict[str, _Resolver]" = OrderedDict()
_ansible: Any = None  # the lazily imported pieces of ansible-core


def warm_up() -> None:
    """Import ansible-core now (from a thread), not on the first pattern. Failures are left
    for that first pattern to report, where they reach the user."""
    try:
        _load_ansible()
    except Exception:  # noqa: BLE001 (reported again, properly, on first use)
        pass


def _load_ansible() -> Any:
    """Import the parts of ansible-core we use (once)."""
    with IMPORT_LOCK:
        return _ansible or _import_ansible()


def _import_ansible() -> Any:
    global _ansible
    if _ansible is None:
        import ansible.constants as C
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager, split_host_pattern

        # A glob term that matches nothing makes Ansible print a warning on our stderr; we
        # report unknown names ourselves, so keep the provider's output clean.
        C.HOST_PATTERN_MISMATCH = "ignore"

        _ansible = SimpleNamespace(InventoryManager=InventoryManager, split_host_pattern=split_host_pattern, AnsibleError=AnsibleError)
    return _ansible


class CannotTell(Exception):
    """The pattern may name hosts whose names are not known yet (see match_planned)."""


class _Resolver:
    """One inventory shape loaded into an InventoryManager, plus resolved patterns.

    `names_known=False`: the host names are placeholders (the testbed names hosts only when it
    reserves them), so a term that could name a host rather than a role raises CannotTell."""

    def __init__(self, inv: Inventory, names_known: bool = True):
        a = _load_ansible()
        self.inv = inv
        self.names_known = names_known
        self.order = {name: k for k, name in enumerate(inv.names)}
        self.manager = a.InventoryManager(loader=None, sources=None, parse=False)
        for role, _ in inv.groups:
            self.manager.add_group(role)
        for name in inv.names:  # `all` in inventory order, as the Ansible inventory file lists them
            self.manager.add_host(name, "all")
        for role, members in inv.groups:
            for name in members:
                self.manager.add_host(name, role)
        self.manager.reconcile_inventory()  # puts role-less hosts into `ungrouped`, as a parse would
        self.results: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def resolve(self, pattern: str) -> list[str]:
        with self.lock:
            if pattern not in self.results:
                self.results[pattern] = self._resolve(pattern)
            return list(self.results[pattern])

    def _resolve(self, pattern: str) -> list[str]:
        a = _load_ansible()
        for term in a.split_host_pattern(pattern):
            self._check_term(term)
        try:
            hosts = self.manager.get_hosts(pattern)
        except a.AnsibleError as err:
            raise PatternError(f"`{pattern}`: {err.message if hasattr(err, 'message') else err}") from None
        names = sorted({h.name for h in hosts if h.name in self.order}, key=self.order.__getitem__)
        if not names:
            raise PatternError(f"`{pattern}` matches no host ({self._known()})")
        return names

    def _check_term(self, term: str) -> None:
        """Reject a literal name (no glob, no regex) that is neither a role nor a host."""
        body = term[1:] if term[:1] in ("&", "!") else term
        if not body:
            raise PatternError(f"empty term `{term}` in the pattern ({self._known()})")
        if body.startswith("~"):
            if not self.names_known:
                raise CannotTell(body)
            return
        base, _ = self.manager._split_subscript(body)  # `role[0:2]` → `role`
        if not self.names_known and base != "all" and (base not in self.manager.groups or any(c in base for c in GLOB_CHARS)):
            raise CannotTell(base)
        if any(c in base for c in GLOB_CHARS) or base == "all":
            return
        if base not in self.manager.groups and base not in self.order:
            raise PatternError(f"unknown role or host `{base}` ({self._known()})")

    def _known(self) -> str:
        def listing(items: list[str]) -> str:
            shown = ", ".join(items[:SHOWN]) + (f", … ({len(items)} in all)" if len(items) > SHOWN else "")
            return shown or "none"

        hosts = listing(self.inv.names) if self.names_known else "named when reserved"
        return f"roles: {listing(sorted(self.inv.roles))}; hosts: {hosts}"  # (map order is not kept over gRPC)


def _resolver(inv: Inventory, names_known: bool = True) -> _Resolver:
    key = inv.shape_hash() + ("" if names_known else "+placeholders")
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    made = _Resolver(inv, names_known)  # outside the lock: the first import of ansible takes a while
    with _lock:
        found = _cache.setdefault(key, made)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return found


def match_hosts(inventory: dict[str, Any] | Inventory, pattern: str) -> list[str]:
    """The names of the hosts `pattern` selects, in inventory order.

    Raises PatternError when a literal term names no role or host, the pattern is malformed
    (bad regex, subscript out of range) or selects nothing; InventoryError (a RemoteError and a
    ValueError) when the inventory itself is malformed."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternError("the host pattern is empty (use `all` for every host)")
    inv = inventory if isinstance(inventory, Inventory) else parse(inventory, connection=False)
    return _resolver(inv).resolve(pattern.strip())


def match_planned(hosts: list[tuple[Optional[str], tuple[str, ...]]], pattern: str) -> Optional[list[str]]:
    """Check `pattern` against hosts known only from a Reservation's inputs (its inventory is
    unknown until it is reserved): (name or None where the testbed names hosts itself, roles).

    Returns the matched names (placeholders `<role>#<k>` for unnamed hosts), None when the
    pattern cannot be judged yet (it may name a host whose name is not known), and raises
    PatternError as match_hosts does."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise PatternError("the host pattern is empty (use `all` for every host)")
    names_known = all(name is not None for name, _ in hosts)
    names = [name if name is not None else f"{roles[0]}#{k}" for k, (name, roles) in enumerate(hosts, 1)]
    groups: dict[str, list[str]] = {}
    for name, (_, roles) in zip(names, hosts):
        for role in roles:
            groups.setdefault(role, []).append(name)
    inv = Inventory(
        tuple(Host(n, "planned", "root", 22) for n in names),
        tuple((role, tuple(members)) for role, members in groups.items()),
        "",
        "",
        None,
    )
    try:
        return _resolver(inv, names_known).resolve(pattern.strip())
    except CannotTell:
        return None
