"""ChameleonTestbed: the Reservation backend on Chameleon Cloud (OpenStack with Blazar leases).

reserve(): one Blazar lease with a `physical:host` reservation per machine group (its
`node_type`), waited on until ACTIVE; a Nova keypair holding the reservation's own key; one
bare-metal server per machine launched on its group's reservation (the scheduler hint), waited
on until ACTIVE; a floating IP per server (unless `chameleonFloatingIps` is off); then SSH
readiness with host keys pinned. The state records the lease, the keypair, every server and
floating IP as soon as it exists, so a failed or interrupted reserve leaves nothing
unrecorded (the resource layer stores it as partial state; destroy frees it).

A provider killed before Create returned leaves no state: the lease is named after the resource
(`plan.lease_name`: its name and 6 hex of its URN) and the servers carry that tag in their
metadata, so the next reserve of the same resource adopts the lease when it asks for the same
hosts (deleting it otherwise) and deletes the servers left behind before launching its own.

The walltime is the lease's length: a changed walltime alone extends (or shortens) the lease in
place; any other change releases it and leases anew. Destroy deletes the servers, the floating
IPs, the keypair, then the lease, and waits until each is gone.

Outputs match the other backends': hosts named `<first role>-<n>`, addresses the floating IPs (or
fixed ones), roles, ssh (user `chameleonSshUser`, pinned keys, ProxyCommand), so a program
runs unchanged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import os
import secrets
import shutil
import tempfile
import time
from typing import Any, Awaitable, Iterable, Optional

from ...common import deadlines, processes
from ...common.results import CheckFailure
from ...common.tasks import all_or_none
from ..base import Progress, ReservationError, ReservationSpec, Testbed, hosts_summary
from ..g5k.oar import format_walltime
from ..g5k.ssh import ssh_argv, wait_and_pin
from . import plan as planning
from .cloud import Cancelled, Cloud, CloudError
from .settings import ChameleonSettings

POLL = float(os.environ.get("PULUMI_TESTBED_CHAMELEON_POLL", "10"))  # seconds between status reads
LEASE_TIMEOUT = float(os.environ.get("PULUMI_TESTBED_CHAMELEON_LEASE_TIMEOUT", "1800"))  # after its start
BOOT_TIMEOUT = float(os.environ.get("PULUMI_TESTBED_CHAMELEON_BOOT_TIMEOUT", "1800"))  # bare metal boots in ~10 min
READY_TIMEOUT = float(os.environ.get("PULUMI_TESTBED_CHAMELEON_READY_TIMEOUT", "600"))
FLAVOR = "baremetal"
GONE_LEASE = {"TERMINATED", "DELETED", "ERROR"}
RESERVE_ERRORS = (CloudError, Cancelled, TimeoutError, ReservationError, OSError)


class ChameleonTestbed(Testbed):
    name = "chameleon"

    def __init__(self, settings: Optional[ChameleonSettings], cancelled: Optional[asyncio.Event] = None) -> None:
        self.settings = settings
        self.cancelled = cancelled or asyncio.Event()

    def preflight(self) -> Optional[str]:
        if self.settings is None:
            return "the chameleon backend is not configured: set `testbed:chameleonCloud`, `testbed:chameleonOpenrc` or `testbed:chameleonAuthUrl` (see `testbed:chameleon*`)"
        if shutil.which("ssh") is None:
            return "the chameleon backend needs the OpenSSH client (`ssh`) to reach the servers"
        return None

    def _configured(self) -> ChameleonSettings:
        if self.settings is None:
            raise ReservationError(self.preflight() or "chameleon backend not configured", None)
        return self.settings

    def _cloud(self, timeout: float = 30.0, attempts: int = 5) -> Cloud:
        return Cloud(self._configured(), stop=self.cancelled, timeout=timeout, attempts=attempts)

    # ---- Check and preview -------------------------------------------------------------------

    def validate(self, spec: ReservationSpec) -> list[CheckFailure]:
        return planning.validate(spec) if self.settings is not None else []

    def planned_names(self, spec: ReservationSpec) -> Optional[list[str]]:
        return [m.name for m in planning.make_plan(spec, self.settings).machines] if self.settings else None

    async def check_access(self) -> list[CheckFailure]:
        """At CheckConfig: one token request. Refused credentials fail the configuration, naming
        the key; an unreachable cloud does not (previews work offline)."""
        if self.settings is None:
            return []
        cloud = self._cloud(timeout=5.0, attempts=1)
        try:
            await cloud.call("checking the credentials", cloud.conn.authorize)
        except CloudError as err:
            if err.status == 401:
                key = (
                    "chameleonApplicationCredentialSecret" if "application_credential_id" in self.settings.options else "chameleonPassword"
                )
                return [CheckFailure(key, str(err))]
        finally:
            cloud.close()
        return []

    async def _catalog(self, cloud: Cloud) -> dict[str, Any]:
        """The cloud's hosts, allocations and image names (what Check and preview judge by)."""

        def hosts() -> list[dict[str, Any]]:
            return list(cloud.blazar.host.list())

        def allocations() -> list[dict[str, Any]]:
            return list(cloud.blazar.allocation.list("os-hosts"))

        def images() -> list[str]:
            return [i.name for i in cloud.conn.image.images()]

        found_hosts, found_allocs, found_images = await asyncio.gather(
            cloud.call("listing Blazar's hosts", hosts),
            cloud.call("listing Blazar's host allocations", allocations),
            cloud.call("listing the images", images),
        )
        return {"hosts": found_hosts, "allocations": found_allocs, "images": found_images}

    async def validate_remote(self, spec: ReservationSpec) -> list[CheckFailure]:
        """Node types and images from the cloud's own lists (close names suggested), and node
        counts against the hosts of each type. Advisory: nothing when the cloud does not answer."""
        settings = self.settings
        if settings is None:
            return []
        plan = planning.make_plan(spec, settings)
        cloud = self._cloud(timeout=5.0, attempts=1)
        try:
            catalog = await asyncio.wait_for(self._catalog(cloud), 15.0)
        except (CloudError, asyncio.TimeoutError):
            return []
        finally:
            cloud.close()
        failures: list[CheckFailure] = []
        types: dict[str, int] = {}
        for h in catalog["hosts"]:
            types[str(h.get("node_type") or "")] = types.get(str(h.get("node_type") or ""), 0) + 1
        wanted: dict[str, int] = {}
        first: dict[str, int] = {}
        for g, node_type in plan.node_types.items():
            prop = f"machines[{g}].nodeType" if "nodeType" in spec.machines[g].options else "chameleonNodeType"
            if node_type not in types:
                failures.append(
                    CheckFailure(
                        prop, f"no node type `{node_type}` on {settings.region or 'this cloud'}" + _suggest(node_type, list(types))
                    )
                )
                continue
            wanted[node_type] = wanted.get(node_type, 0) + spec.machines[g].count
            first.setdefault(node_type, g)
        for node_type, count in wanted.items():
            if count > types[node_type]:
                failures.append(
                    CheckFailure(
                        f"machines[{first[node_type]}].count",
                        f"{count} `{node_type}` node(s) wanted, {settings.region or 'the cloud'} has {types[node_type]}",
                    )
                )
        for g, image in plan.images.items():
            if image not in catalog["images"]:
                prop = f"machines[{g}].environment" if "environment" in spec.machines[g].options else "chameleonImage"
                failures.append(
                    CheckFailure(prop, f"no image `{image}` on {settings.region or 'this cloud'}" + _suggest(image, catalog["images"]))
                )
        return failures

    async def forecast(self, spec: ReservationSpec) -> Optional[tuple[bool, str]]:
        """Preview: the lease asked for, and whether enough hosts of each type are free for its
        whole window (Blazar's host allocations), like Grid'5000's forecast."""
        settings = self.settings
        if settings is None:
            return None
        plan = planning.make_plan(spec, settings)
        cloud = self._cloud(timeout=5.0, attempts=1)
        try:
            catalog = await asyncio.wait_for(self._catalog(cloud), 15.0)
            now = await cloud.now()
        except (CloudError, asyncio.TimeoutError):
            return None
        finally:
            cloud.close()
        start = plan.start or now
        end = start + dt.timedelta(seconds=plan.walltime)
        when = "now" if plan.start is None else f"at {start.strftime(planning.API_DATE)} UTC"
        asked = ", ".join(f"{spec.machines[g].count}× {t}" for g, t in plan.node_types.items())
        head = f"lease of {asked} for {format_walltime(plan.walltime)} starting {when} on {settings.region or 'the cloud'}"
        busy = _busy_hosts(catalog["allocations"], start, end)
        short = []
        free_text = []
        wanted: dict[str, int] = {}
        for g, t in plan.node_types.items():
            wanted[t] = wanted.get(t, 0) + spec.machines[g].count
        for t, count in wanted.items():
            of_type = [str(h["id"]) for h in catalog["hosts"] if h.get("node_type") == t]
            free = len([h for h in of_type if h not in busy])
            free_text.append(f"{free} of {len(of_type)} {t} free")
            if free < count:
                short.append(t)
        if short:
            return True, f"{head}: only {'; '.join(free_text)} for that window; Blazar would refuse it (choose another `start`)"
        return False, f"{head}: {'; '.join(free_text)} for that window"

    # ---- reserve ------------------------------------------------------------------------------

    async def reserve(self, spec: ReservationSpec, owner: str, progress: Progress) -> dict[str, Any]:
        settings = self._configured()
        plan = planning.make_plan(spec, settings)
        state = _empty_state(spec, settings, owner)
        cloud = self._cloud()
        work = tempfile.mkdtemp(prefix="tb-chameleon-")
        try:
            state["ssh"].update(await _keypair(work, state["id"]))
            lease = await self._lease(cloud, spec, plan, state, progress)
            await self._servers(cloud, spec, plan, state, lease, progress)
            await self._ready(state, work, progress)
            return state
        except RESERVE_ERRORS as err:
            message = str(err) if isinstance(err, (CloudError, ReservationError)) else f"reserving on Chameleon failed: {err}"
            if isinstance(err, Cancelled):
                message = "reserving on Chameleon was cancelled"
            raise ReservationError(message, state if _holds_anything(state) else None) from err
        finally:
            cloud.close()
            shutil.rmtree(work, ignore_errors=True)

    async def _lease(
        self, cloud: Cloud, spec: ReservationSpec, plan: planning.Plan, state: dict[str, Any], progress: Progress
    ) -> dict[str, Any]:
        """The lease: adopted when an interrupted create of this resource left one asking for the
        same hosts, else created; then waited on until ACTIVE."""
        name = state["chameleon"]["leaseName"]
        wanted = plan.reservations(spec)
        found = await self._find_lease(cloud, name)
        lease: Optional[dict[str, Any]] = None
        if found is not None and planning.same_request(found, wanted) and found.get("status") not in GONE_LEASE:
            lease = found
            await progress(f"adopting lease `{name}` ({found['id']}), left by an interrupted create of this resource")
        elif found is not None:
            await progress(f"deleting lease `{name}` ({found['id']}), left by an interrupted create with another request")
            await self._delete_lease(cloud, found["id"], progress)
        if lease is None:
            now = await cloud.now()
            start = plan.start
            end = (start or now) + dt.timedelta(seconds=plan.walltime)
            asked = ", ".join(f"{r['min']}× {t}" for r, t in zip(wanted, plan.node_types.values()))
            await progress(f"leasing {asked} until {end.strftime(planning.API_DATE)} UTC")
            try:
                lease = await cloud.call(
                    f"creating lease `{name}`",
                    cloud.blazar.lease.create,
                    name,
                    start.strftime(planning.API_DATE) if start else "now",
                    end.strftime(planning.API_DATE),
                    wanted,
                    [],
                    retry="unprocessed",
                )
            except CloudError as err:
                if err.status is None or err.status >= 500:  # the POST may have taken effect: look again
                    again = await self._find_lease(cloud, name)
                    if again is None:
                        raise
                    lease = again
                elif err.status == 409 or "not enough" in err.reason.lower():
                    raise CloudError(
                        f"Blazar refused lease `{name}`: {err.reason}; the hosts are taken for that window "
                        "(`pulumi preview` shows what is free; choose another `start` or fewer nodes)",
                        err.status,
                        err.reason,
                    ) from None
                else:
                    raise
        assert lease is not None
        state["chameleon"]["lease"] = {"id": lease["id"], "name": name}
        return await self._wait_active(cloud, lease, progress)

    async def _find_lease(self, cloud: Cloud, name: str) -> Optional[dict[str, Any]]:
        leases = await cloud.call("listing leases", cloud.blazar.lease.list)
        mine = [x for x in leases if x.get("name") == name and x.get("status") not in GONE_LEASE]
        return mine[0] if mine else None

    async def _wait_active(self, cloud: Cloud, lease: dict[str, Any], progress: Progress) -> dict[str, Any]:
        started = time.monotonic()
        last = ""
        deadline: Optional[float] = None
        while True:
            status = str(lease.get("status"))
            if status == "ACTIVE" and not lease.get("degraded"):
                await progress(f"lease {lease['id']} ACTIVE after {time.monotonic() - started:.0f} s")
                return lease
            if status in GONE_LEASE or lease.get("degraded"):
                raise CloudError(
                    f"lease `{lease.get('name')}` ({lease['id']}) ended in status {status}"
                    + (" (degraded)" if lease.get("degraded") else "")
                    + " before it was active"
                )
            line = f"lease {lease['id']}: {status}"
            if status == "PENDING":
                line += f", starts {lease.get('start_date', '?')[:16].replace('T', ' ')} UTC"
            elif deadline is None:
                deadline = deadlines.after(LEASE_TIMEOUT)
            if line != last or int(time.monotonic() - started) % 60 < POLL:
                await progress(f"{line} ({time.monotonic() - started:.0f} s)")
                last = line
            if deadline is not None and deadlines.passed(deadline):
                raise TimeoutError(f"lease {lease['id']} was not ACTIVE {LEASE_TIMEOUT:g} s after it started (status {status})")
            await cloud.sleep(POLL)
            lease = await cloud.call("reading the lease", cloud.blazar.lease.get, lease["id"])

    async def _servers(
        self, cloud: Cloud, spec: ReservationSpec, plan: planning.Plan, state: dict[str, Any], lease: dict[str, Any], progress: Progress
    ) -> None:
        settings = self._configured()
        conn = cloud.conn
        record = state["chameleon"]
        reservation = _reservation_ids(lease, plan.reservations(spec))
        await self._delete_leftover_servers(cloud, record["owner"], progress)
        flavor = await cloud.call(f"finding flavor `{FLAVOR}`", conn.compute.find_flavor, FLAVOR, ignore_missing=False)
        network = await cloud.call(
            f"finding network `{settings.network}`", conn.network.find_network, settings.network, ignore_missing=False
        )
        images: dict[str, str] = {}
        for name in sorted(set(plan.images.values())):
            image = await cloud.call(f"finding image `{name}`", conn.image.find_image, name)
            if image is None:
                raise CloudError(f"no image `{name}` on {settings.region or 'the cloud'} (`environment` / `testbed:chameleonImage`)")
            images[name] = image.id
        keyname = record["keypair"] = f"testbed-{state['id']}"
        await cloud.call(
            f"creating keypair `{keyname}`",
            conn.compute.create_keypair,
            name=keyname,
            public_key=state["ssh"]["publicKey"],
            retry="unprocessed",
        )
        await progress(f"launching {len(plan.machines)} server(s) on lease {lease['id']}")

        async def launch(m: planning.Machine) -> None:
            server = await cloud.call(
                f"creating server `{m.name}`",
                conn.compute.create_server,
                name=m.name,
                image_id=images[plan.images[m.group]],
                flavor_id=flavor.id,
                networks=[{"uuid": network.id}],
                key_name=keyname,
                scheduler_hints={"reservation": reservation[m.group]},
                metadata={planning.MARK: record["owner"]},
                retry="unprocessed",
            )
            record["servers"].append({"id": server.id, "name": m.name, "group": m.group})

        await _every(launch(m) for m in plan.machines)
        servers = await self._wait_servers(cloud, record["servers"], progress)
        subnets = await _subnet_cidrs(cloud, network)
        for m in plan.machines:
            entry = next(s for s in record["servers"] if s["name"] == m.name)
            fixed = _fixed_address(servers[entry["id"]], settings.network)
            entry["fixed"] = fixed
            entry["cidr"] = next((c for c in subnets if _in(fixed, c)), "")
        if settings.floating_ips:
            await self._floating_ips(cloud, record, progress)
        for m in plan.machines:
            entry = next(s for s in record["servers"] if s["name"] == m.name)
            state["hosts"].append(
                {
                    "name": m.name,
                    "address": entry.get("floating") or entry["fixed"],
                    "roles": list(m.roles),
                    "networks": [
                        {"id": net.id, "address": entry["fixed"], "interface": "", "cidr": entry["cidr"]}
                        for net in spec.networks
                        if net.roles is None or set(m.roles) & set(net.roles)
                    ],
                    "group": m.group,
                    "server": entry["id"],
                }
            )

    async def _delete_leftover_servers(self, cloud: Cloud, owner: str, progress: Progress) -> None:
        """Servers an interrupted create of this resource launched: their key died with it."""
        servers = await cloud.call("listing servers", lambda: list(cloud.conn.compute.servers(details=True)))
        left = [s for s in servers if (s.metadata or {}).get(planning.MARK) == owner]
        if not left:
            return
        await progress(f"deleting {len(left)} server(s) left by an interrupted create of this resource")
        for s in left:
            await cloud.call(f"deleting server {s.name}", cloud.conn.compute.delete_server, s.id, ignore_missing=True)
        await self._wait_servers_gone(cloud, [s.id for s in left], progress)

    async def _wait_servers(self, cloud: Cloud, records: list[dict[str, Any]], progress: Progress) -> dict[str, Any]:
        """Every server ACTIVE (one listing per poll, whatever their number); an ERROR fails at once, quoting Nova's fault."""
        started = time.monotonic()
        deadline = deadlines.after(BOOT_TIMEOUT)
        ids = {r["id"] for r in records}
        last = -1
        while True:
            servers = {
                s.id: s for s in await cloud.call("listing servers", lambda: list(cloud.conn.compute.servers(details=True))) if s.id in ids
            }
            for r in records:
                s = servers.get(r["id"])
                if s is None:
                    raise CloudError(f"server `{r['name']}` ({r['id']}) disappeared while it was being built")
                if s.status == "ERROR":
                    fault = (s.fault or {}).get("message") if isinstance(s.fault, dict) else None
                    raise CloudError(f"server `{r['name']}` ({r['id']}) failed to build: {fault or 'Nova gives no reason'}")
            active = sum(1 for s in servers.values() if s.status == "ACTIVE")
            if active != last:
                await progress(f"{active}/{len(records)} server(s) ACTIVE ({time.monotonic() - started:.0f} s)")
                last = active
            if active == len(records):
                return servers
            if deadlines.passed(deadline):
                raise TimeoutError(f"{len(records) - active} server(s) not ACTIVE within {BOOT_TIMEOUT:g} s")
            await cloud.sleep(POLL)

    async def _wait_servers_gone(self, cloud: Cloud, ids: list[str], progress: Progress) -> None:
        deadline = deadlines.after(BOOT_TIMEOUT)
        while True:
            present = {s.id for s in await cloud.call("listing servers", lambda: list(cloud.conn.compute.servers()))}
            left = [i for i in ids if i in present]
            if not left:
                return
            if deadlines.passed(deadline):
                raise TimeoutError(f"{len(left)} server(s) still not deleted after {BOOT_TIMEOUT:g} s")
            await cloud.sleep(POLL)

    async def _floating_ips(self, cloud: Cloud, record: dict[str, Any], progress: Progress) -> None:
        settings = self._configured()
        conn = cloud.conn
        public = await cloud.call(
            f"finding network `{settings.public_network}`", conn.network.find_network, settings.public_network, ignore_missing=False
        )
        await progress(f"attaching {len(record['servers'])} floating IP(s) from `{settings.public_network}`")

        async def attach(entry: dict[str, Any]) -> None:
            ports = await cloud.call(f"finding the port of {entry['name']}", lambda: list(conn.network.ports(device_id=entry["id"])))
            if not ports:
                raise CloudError(f"server `{entry['name']}` has no port to attach a floating IP to")
            fip = await cloud.call(
                f"creating a floating IP for {entry['name']}",
                conn.network.create_ip,
                floating_network_id=public.id,
                port_id=ports[0].id,
                description=f"{planning.MARK} {record['owner']}",
                retry="unprocessed",
            )
            record["floatingIps"].append(fip.id)
            entry["floating"] = fip.floating_ip_address

        await _every(attach(e) for e in record["servers"])

    async def _ready(self, state: dict[str, Any], work: str, progress: Progress) -> None:
        """Every host answers SSH (its key pinned on first use), and each experiment network's
        interface is the one holding the host's fixed address."""
        ssh = state["ssh"]
        key = os.path.join(work, "id")
        if not os.path.exists(key):
            from ...common.private_files import write_private

            write_private(key, ssh["privateKey"], 0o600)
        done = 0
        hosts = state["hosts"]
        await progress(f"waiting for SSH on {len(hosts)} server(s)")

        async def one(h: dict[str, Any]) -> str:
            nonlocal done
            found = await wait_and_pin(h["address"], ssh["user"], key, work, ssh["proxyCommand"], READY_TIMEOUT, self.cancelled)
            done += 1
            await progress(f"SSH ready on {done}/{len(hosts)} hosts")
            return found

        keys = await all_or_none(one(h) for h in hosts)
        ssh["knownHosts"] = "".join(f"{h['name']},{h['address']} {k}\n" for h, k in zip(hosts, keys))
        known = os.path.join(work, "known_hosts")
        with open(known, "w") as f:
            f.write(ssh["knownHosts"])

        async def interfaces(h: dict[str, Any]) -> None:
            if not h["networks"]:
                return
            argv = ssh_argv(h["address"], ssh["user"], key, known, ssh["proxyCommand"], command="ip -o -4 addr show", strict=True)
            out = await processes.run(argv, env=None, deadline=deadlines.after(60), cancelled=self.cancelled)
            text = out.stdout.decode(errors="replace") if out.outcome == processes.EXITED else ""
            fixed = h["networks"][0]["address"]
            iface = next((line.split()[1] for line in text.splitlines() if f" {fixed}/" in line), "")
            for n in h["networks"]:
                n["interface"] = iface

        await asyncio.gather(*(interfaces(h) for h in hosts))

    # ---- later calls, driven by the state ----------------------------------------------------

    async def reconcile(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        """A changed walltime alone moves the lease's end in place; anything else is leased anew."""
        record = state.get("chameleon", {})
        if record.get("lease") and record.get("specNoWalltime") == planning.fingerprint(spec, walltime=False) and state.get("hosts"):
            return await self._extend(state, spec, progress)
        await progress("a chameleon reservation cannot change its hosts in place: releasing it and leasing again")
        await self.release(state, progress)
        try:
            return await self.reserve(spec, owner=record.get("urn", ""), progress=progress)
        except ReservationError as err:
            if err.state is None:
                empty = {**_empty_state(spec, self._configured(), record.get("urn", "")), "id": state["id"]}
                raise ReservationError(str(err), empty) from err
            raise

    async def _extend(self, state: dict[str, Any], spec: ReservationSpec, progress: Progress) -> dict[str, Any]:
        plan = planning.make_plan(spec, self._configured())
        record = state["chameleon"]
        cloud = self._cloud()
        try:
            lease = await cloud.call("reading the lease", cloud.blazar.lease.get, record["lease"]["id"])
            start = planning.parse_lease_date(lease["start_date"])
            end = start + dt.timedelta(seconds=plan.walltime)
            if planning.parse_lease_date(lease["end_date"]).strftime(planning.API_DATE) != end.strftime(planning.API_DATE):
                await progress(
                    f"moving the end of lease {lease['id']} to {end.strftime(planning.API_DATE)} UTC (walltime {format_walltime(plan.walltime)})"
                )
                await cloud.call("updating the lease", cloud.blazar.lease.update, lease["id"], end_date=end.strftime(planning.API_DATE))
        except CloudError as err:
            raise ReservationError(f"changing the walltime failed: {err}", state) from err
        finally:
            cloud.close()
        return {**state, "chameleon": {**record, "spec": planning.fingerprint(spec)}}

    async def inspect(self, state: dict[str, Any]) -> Optional[dict[str, Any]]:
        record = state.get("chameleon", {})
        if not record.get("lease"):
            return None
        cloud = self._cloud()
        try:
            try:
                lease = await cloud.call("reading the lease", cloud.blazar.lease.get, record["lease"]["id"])
            except CloudError as err:
                if err.status == 404:
                    return None
                raise
            if lease.get("status") in GONE_LEASE:
                return None
            servers = {s.id: s for s in await cloud.call("listing servers", lambda: list(cloud.conn.compute.servers()))}
        except (CloudError, Cancelled) as err:
            raise ReservationError(f"reading the lease and its servers failed: {err}", state) from err
        finally:
            cloud.close()
        alive = [h for h in state["hosts"] if h.get("server") in servers and servers[h["server"]].status == "ACTIVE"]
        return {**state, "hosts": alive}

    def describe(self, state: dict[str, Any]) -> str:
        ready = hosts_summary([h["name"] for h in state.get("hosts", [])])
        record = state.get("chameleon", {})
        if not record.get("lease"):
            return ready
        return f"{ready}; lease {record['lease']['id']} with {len(record.get('servers', []))} server(s)"

    async def release(self, state: dict[str, Any], progress: Progress) -> None:
        record = state.get("chameleon", {})
        cloud = self._cloud()
        try:
            conn = cloud.conn
            ids = [s["id"] for s in record.get("servers", [])]
            for sid in ids:
                await cloud.call(f"deleting server {sid}", conn.compute.delete_server, sid, ignore_missing=True)
            if ids:
                await progress(f"deleting {len(ids)} server(s)")
                await self._wait_servers_gone(cloud, ids, progress)
            for fip in record.get("floatingIps", []):
                await cloud.call(f"releasing floating IP {fip}", conn.network.delete_ip, fip, ignore_missing=True)
            if record.get("keypair"):
                await cloud.call(
                    f"deleting keypair {record['keypair']}", conn.compute.delete_keypair, record["keypair"], ignore_missing=True
                )
            if record.get("lease"):
                await self._delete_lease(cloud, record["lease"]["id"], progress)
        except (CloudError, Cancelled, TimeoutError) as err:
            raise ReservationError(f"releasing the Chameleon reservation failed: {err}", state) from err
        finally:
            cloud.close()

    async def _delete_lease(self, cloud: Cloud, lease_id: str, progress: Progress) -> None:
        try:
            await cloud.call(f"deleting lease {lease_id}", cloud.blazar.lease.delete, lease_id)
        except CloudError as err:
            if err.status != 404:
                raise
        deadline = deadlines.after(BOOT_TIMEOUT)
        while True:
            try:
                lease = await cloud.call("reading the lease", cloud.blazar.lease.get, lease_id)
            except CloudError as err:
                if err.status == 404:
                    break
                raise
            if lease.get("status") in GONE_LEASE:
                break
            if deadlines.passed(deadline):
                raise TimeoutError(f"lease {lease_id} still {lease.get('status')} {BOOT_TIMEOUT:g} s after its deletion")
            await cloud.sleep(POLL)
        await progress(f"lease {lease_id}: deleted")


async def _every(calls: Iterable[Awaitable[None]]) -> None:
    """Run creating calls side by side and let every one finish before the first failure is
    raised: a call cancelled in its thread would still create its object, unrecorded (where
    `all_or_none` cancels the siblings of a failure)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return f"; did you mean {', '.join(f'`{c}`' for c in close)}?"
    shown = sorted(set(known))[:8]
    return f" (known: {', '.join(shown)}{' …' if len(set(known)) > 8 else ''})" if shown else ""


def _busy_hosts(allocations: list[dict[str, Any]], start: dt.datetime, end: dt.datetime) -> set[str]:
    busy = set()
    for alloc in allocations:
        for r in alloc.get("reservations") or []:
            try:
                r_start, r_end = planning.parse_lease_date(r["start_date"]), planning.parse_lease_date(r["end_date"])
            except (KeyError, ValueError):
                continue
            if r_start < end and start < r_end:
                busy.add(str(alloc.get("resource_id")))
    return busy


def _reservation_ids(lease: dict[str, Any], wanted: list[dict[str, Any]]) -> dict[int, str]:
    """Group → the id of its `physical:host` reservation in the lease (Blazar need not keep the
    request's order; groups asking for the same thing may take either)."""
    left = list(lease.get("reservations") or [])
    out: dict[int, str] = {}
    for g, w in enumerate(wanted):
        for r in left:
            if planning.same_request({"reservations": [r]}, [w]):
                out[g] = r["id"]
                left.remove(r)
                break
        else:
            raise CloudError(f"lease {lease['id']} has no reservation matching machine group {g}")
    return out


async def _subnet_cidrs(cloud: Cloud, network: Any) -> list[str]:
    subnets = await cloud.call("listing the network's subnets", lambda: list(cloud.conn.network.subnets(network_id=network.id)))
    return [s.cidr for s in subnets if s.cidr]


def _fixed_address(server: Any, network: str) -> str:
    addresses = server.addresses or {}
    entries: list[dict[str, Any]] = addresses.get(network) or next(iter(addresses.values()), [])
    for a in entries:
        if a.get("OS-EXT-IPS:type", "fixed") == "fixed" and a.get("version", 4) == 4:
            return str(a["addr"])
    raise CloudError(f"server `{server.name}` has no IPv4 address on `{network}`")


def _in(address: str, cidr: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _holds_anything(state: dict[str, Any]) -> bool:
    record = state["chameleon"]
    return bool(record.get("lease") or record.get("servers") or record.get("floatingIps") or record.get("keypair"))


def _empty_state(spec: ReservationSpec, settings: ChameleonSettings, owner: str) -> dict[str, Any]:
    return {
        "backend": "chameleon",
        "id": f"{spec.name}-{secrets.token_hex(3)}",
        "hosts": [],
        "networks": [{"id": n.id, "roles": list(n.roles) if n.roles is not None else None} for n in spec.networks],
        "ssh": {
            "user": settings.ssh_user,
            "port": 22,
            "knownHosts": "",
            "proxyCommand": settings.proxy_command,
            "privateKey": "",
            "publicKey": "",
        },
        "chameleon": {
            "region": settings.region,
            "urn": owner,
            "owner": planning.owner_tag(owner or spec.name),
            "leaseName": planning.lease_name(spec, owner),
            "lease": None,
            "keypair": None,
            "servers": [],
            "floatingIps": [],
            "spec": planning.fingerprint(spec),
            "specNoWalltime": planning.fingerprint(spec, walltime=False),
        },
    }


async def _keypair(work: str, name: str) -> dict[str, str]:
    """A fresh ed25519 key for this reservation (the servers' authorized key, through Nova)."""
    from ...hosts.keys import generate, read_public
    from ...protocol.redact import REDACTOR

    path = os.path.join(work, "id")
    await generate(path, f"pulumi-testbed chameleon {name}", None)
    with open(path) as f:
        private = f.read()
    REDACTOR.register(private)
    return {"privateKey": private, "publicKey": read_public(path + ".pub")}
