"""StaticTestbed: a Reservation of machines that already exist (EnOSlib's Static provider).

Nothing is reserved: `reserve` takes each group's hosts from `testbed:staticHosts` (by the
group's first role, in order), checks that every one answers SSH with the configured key and
pins the host key it presents (checked against `testbed:staticKnownHosts` when given; trusted
on first use otherwise, which the preview says). `release` leaves the hosts as they are: what
the stack did on them is undone by the steps' own destroy. Refresh drops the hosts that no
longer answer (`lost outside Pulumi`); the next `up` checks them again.

Outputs match the other backends': hosts named by their `alias`, else `<first role>-<n>` as on
the local testbed, so a program runs unchanged; per-host user and port are kept.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from ...common import deadlines, processes
from ...common.private_files import write_private
from ...common.results import CheckFailure
from ...common.tasks import all_or_none
from ..base import Progress, ReservationError, ReservationSpec, Testbed, hosts_summary
from ..g5k.ssh import HostKeyRefused, ssh_argv, wait_and_pin
from .settings import StaticHost, StaticSettings, parse_host

READY_TIMEOUT = float(os.environ.get("PULUMI_TESTBED_STATIC_READY_TIMEOUT", "60"))
CHECK_TIMEOUT = 15.0  # one refresh look at a host
CHECK_TRIES = 2


@dataclass(frozen=True)
class Placed:
    name: str
    group: int
    host: StaticHost


def group_hosts(spec: ReservationSpec, g: int) -> Optional[list[StaticHost]]:
    """The group's own `hosts`, parsed (None: it names none); bad entries are left out (validate
    reports them)."""
    entries = spec.machines[g].options.get("hosts")
    if entries is None:
        return None
    parsed = [parse_host(e, f"machines[{g}].hosts[{k}]", lambda _: None) for k, e in enumerate(entries)]
    return [h for h in parsed if h is not None]


def place(spec: ReservationSpec, settings: StaticSettings) -> list[Placed]:
    """Each group's hosts: its own `hosts`, else the next ones of its first role's list in
    `staticHosts`; names as on the local testbed (`<first role>-<n>`) unless a host has an
    alias. Assumes validate() passed."""
    taken: dict[str, int] = {}
    counters: dict[str, int] = {}
    out = []
    for g, group in enumerate(spec.machines):
        role = group.roles[0]
        base = role.replace("_", "-")
        own = group_hosts(spec, g)
        if own is not None:
            chosen = own[: group.count]
        else:
            start = taken.get(role, 0)
            chosen = settings.hosts.get(role, [])[start : start + group.count]
            taken[role] = start + group.count
        for host in chosen:
            if host.alias:
                out.append(Placed(host.alias, g, host))
                continue
            counters[base] = counters.get(base, 0) + 1
            out.append(Placed(f"{base}-{counters[base]}", g, host))
    return out


class StaticTestbed(Testbed):
    name = "static"

    def __init__(self, settings: Optional[StaticSettings], cancelled: Optional[asyncio.Event] = None) -> None:
        self.settings = settings
        self.cancelled = cancelled or asyncio.Event()

    def preflight(self) -> Optional[str]:
        if self.settings is None:
            return "the static backend is not configured: set `testbed:staticSshKeyFile` (and the hosts, in `testbed:staticHosts` or each group's `hosts`)"
        if shutil.which("ssh") is None:
            return "the static backend needs the OpenSSH client (`ssh`)"
        return None

    def validate(self, spec: ReservationSpec) -> list[CheckFailure]:
        if self.settings is None:
            return []  # the configuration's own failures say why (and reserve's preflight)
        failures: list[CheckFailure] = []
        settings = self.settings
        wanted: dict[str, int] = {}
        for g, group in enumerate(spec.machines):
            if group.kind != "host":
                failures.append(CheckFailure(f"machines[{g}].kind", "the static backend runs on existing machines only (`host`)"))
            for key in sorted(set(group.options) - {"hosts"}):
                failures.append(CheckFailure(f"machines[{g}].{key}", f"`{key}` means nothing on the static backend"))
            if "hosts" in group.options:
                entries = group.options["hosts"]
                for k, entry in enumerate(entries):
                    parse_host(
                        entry, f"machines[{g}].hosts[{k}]", lambda reason: failures.append(CheckFailure(reason.split(":")[0], reason))
                    )
                if len(entries) != group.count:
                    failures.append(CheckFailure(f"machines[{g}].count", f"{group.count}, but `hosts` lists {len(entries)} machine(s)"))
                continue
            role = group.roles[0]
            wanted[role] = wanted.get(role, 0) + group.count
            have = len(settings.hosts.get(role, []))
            if wanted[role] > have:
                failures.append(
                    CheckFailure(
                        f"machines[{g}].count",
                        f"{wanted[role]} host(s) of role `{role}` wanted, `testbed:staticHosts` lists {have} "
                        f"(roles there: {', '.join(sorted(settings.hosts)) or 'none'}); or give the group its own `hosts`",
                    )
                )
        if failures:
            return failures
        placed = place(spec, settings)
        names = [p.name for p in placed]
        targets = [(p.host.address, p.host.port) for p in placed]
        for address, port in sorted({t for t in targets if targets.count(t) > 1}):
            failures.append(CheckFailure("machines", f"{address}:{port} is listed for two machines: one machine, one inventory host"))
        for name in sorted({n for n in names if names.count(n) > 1}):
            failures.append(CheckFailure("machines", f"two hosts are named `{name}`: give them distinct aliases in `testbed:staticHosts`"))
        for k, net in enumerate(spec.networks):
            if net.cidr is not None:
                failures.append(
                    CheckFailure(f"networks[{k}].cidr", "on the static backend a network's addresses are the hosts' own; omit `cidr`")
                )
            for p in placed:
                if (net.roles is None or set(spec.machines[p.group].roles) & set(net.roles)) and not any(
                    n.id == net.id for n in p.host.networks
                ):
                    failures.append(
                        CheckFailure(
                            f"networks[{k}]",
                            f"{p.name} ({p.host.address}) joins `{net.id}` but lists no address on it in `testbed:staticHosts`",
                        )
                    )
        return failures

    def planned_names(self, spec: ReservationSpec) -> Optional[list[str]]:
        return [p.name for p in place(spec, self.settings)] if self.settings else None

    async def forecast(self, spec: ReservationSpec) -> Optional[tuple[bool, str]]:
        if self.settings is None:
            return None
        placed = place(spec, self.settings)
        listed = ", ".join(f"{p.name} ({p.host.address})" for p in placed[:5]) + (" …" if len(placed) > 5 else "")
        if self.settings.known_hosts:
            return False, f"{len(placed)} existing host(s): {listed}; host keys checked against `testbed:staticKnownHosts`"
        return True, (
            f"{len(placed)} existing host(s): {listed}; their host keys will be trusted on first use and pinned "
            "(set `testbed:staticKnownHosts` to check them)"
        )

    def _configured(self) -> StaticSettings:
        if self.settings is None:
            raise ReservationError(self.preflight() or "static backend not configured", None)
        return self.settings

    # ---- reserve: check and pin ------------------------------------------------------------

    async def reserve(self, spec: ReservationSpec, owner: str, progress: Progress) -> dict[str, Any]:
        return await self._check(spec, progress, pinned="", state_id=f"{spec.name}-{secrets.token_hex(3)}")

    async def _check(self, spec: ReservationSpec, progress: Progress, pinned: str, state_id: str) -> dict[str, Any]:
        """Every host answers SSH, its key checked by OpenSSH itself before anything runs there:
        against `staticKnownHosts` when given (strictly: a host it does not list is refused),
        else against `pinned` (known_hosts lines of an earlier check; a host new to them is
        trusted on first use). The state; nothing was created, so a failure leaves nothing."""
        settings = self._configured()
        placed = place(spec, settings)
        strict = bool(settings.known_hosts)
        work = tempfile.mkdtemp(prefix="tb-static-")
        try:
            from ...protocol.redact import REDACTOR

            try:
                with open(settings.key_file or "", "rb") as fb:
                    private = fb.read().decode()
            except (OSError, UnicodeDecodeError) as err:
                raise ReservationError(f"staticSshKeyFile: cannot read `{settings.key_file}` as an SSH private key ({err})", None) from None
            REDACTOR.register(private)
            key = os.path.join(work, "id")
            write_private(key, private, 0o600)
            derived = await processes.run(["ssh-keygen", "-y", "-P", "", "-f", key], env=processes.SAFE_ENV)
            if derived.returncode != 0:
                raise ReservationError(
                    f"staticSshKeyFile: `{settings.key_file}` is not a private key usable without a passphrase "
                    "(load a passphrase-protected key into no agent: give an unprotected one)",
                    None,
                )
            public = derived.stdout.decode().strip()
            await progress(f"checking SSH on {len(placed)} existing host(s)" + (" against `staticKnownHosts`" if strict else ""))
            done = 0

            async def one(p: Placed) -> str:
                nonlocal done
                try:
                    found = await wait_and_pin(
                        p.host.address,
                        p.host.user or settings.user,
                        key,
                        work,
                        settings.proxy_command,
                        READY_TIMEOUT,
                        self.cancelled,
                        p.host.port,
                        known_text=settings.known_hosts if strict else pinned,
                        strict=strict,
                    )
                except HostKeyRefused as err:
                    where = "`staticKnownHosts`" if strict else "the key pinned when it was first reached"
                    raise ReservationError(f"{p.name} ({p.host.address}): {err}: checked against {where}", None) from None
                done += 1
                await progress(f"SSH ready on {done}/{len(placed)} hosts")
                return found

            keys = await all_or_none(one(p) for p in placed)
        except (TimeoutError, OSError) as err:
            raise ReservationError(f"checking the static hosts failed: {err}", None) from err
        except deadlines.Cancelled as err:
            raise ReservationError("checking the static hosts was cancelled", None) from err
        finally:
            shutil.rmtree(work, ignore_errors=True)
        hosts, known = [], []
        for p, host_key in zip(placed, keys):
            h = p.host
            hosts.append(
                {
                    "name": p.name,
                    "address": h.address,
                    "user": h.user or settings.user,
                    "port": h.port,
                    "roles": list(spec.machines[p.group].roles),
                    "networks": [{"id": n.id, "address": n.address, "interface": n.interface, "cidr": ""} for n in h.networks],
                    "group": p.group,
                }
            )
            if not strict:  # with `staticKnownHosts`, its own lines (hashed, patterns…) are what OpenSSH checks
                target = h.address if h.port == 22 else f"[{h.address}]:{h.port}"
                known.append(f"{p.name},{target} {host_key}\n")
        return {
            "backend": "static",
            "id": state_id,
            "hosts": hosts,
            "networks": [{"id": n.id, "roles": list(n.roles) if n.roles is not None else None} for n in spec.networks],
            "ssh": {
                "user": settings.user,
                "port": 22,
                "knownHosts": settings.known_hosts if strict else "".join(known),
                "proxyCommand": settings.proxy_command,
                "privateKey": private,
                "publicKey": public,
            },
        }

    async def reconcile(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        """Check the hosts `spec` now names; a host seen before must present the key pinned then."""
        try:
            return await self._check(spec, progress, state.get("ssh", {}).get("knownHosts", ""), state["id"])
        except ReservationError as err:
            raise ReservationError(str(err), state) from err  # the hosts stay as recorded

    async def inspect(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The hosts that still answer SSH with their pinned key (two quick tries each)."""
        ssh = state["ssh"]
        with tempfile.TemporaryDirectory(prefix="tb-static-") as work:
            key, known = os.path.join(work, "id"), os.path.join(work, "known_hosts")
            write_private(key, ssh.get("privateKey") or "", 0o600)
            write_private(known, ssh.get("knownHosts") or "", 0o600)

            async def alive(h: dict[str, Any]) -> bool:
                argv = ssh_argv(
                    h["address"],
                    h.get("user") or ssh["user"],
                    key,
                    known,
                    ssh.get("proxyCommand") or "",
                    port=int(h.get("port") or 22),
                    strict=True,
                )
                for attempt in range(CHECK_TRIES):  # a blip of the network is not a lost host
                    done = await processes.run(argv, env=None, deadline=deadlines.after(CHECK_TIMEOUT), cancelled=self.cancelled)
                    if done.outcome == processes.EXITED and done.returncode == 0:
                        return True
                    if attempt + 1 < CHECK_TRIES:
                        await deadlines.sleep(2.0, self.cancelled)
                return False

            answers = await asyncio.gather(*(alive(h) for h in state["hosts"]))
        return {**state, "hosts": [h for h, ok in zip(state["hosts"], answers) if ok]}

    def describe(self, state: dict[str, Any]) -> str:
        return hosts_summary([h["name"] for h in state.get("hosts", [])])

    async def release(self, state: dict[str, Any], progress: Progress) -> None:
        await progress(f"{len(state.get('hosts', []))} static host(s) left as they are (nothing was reserved)")
