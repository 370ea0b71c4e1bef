"""`testbed gc [--yes]`: remove what no stack can release any more, listing it first.

Some leftovers are invisible to Pulumi: a local reservation whose create was interrupted (the
provider died before answering, so no state records it), one whose stack was removed with
`pulumi stack rm --force` or that `pulumi state delete` dropped, `tb-` namespaces whose run dir
is gone, and the CLI's cached keys of reservations that no longer exist. This finds them on this
machine and says why each can go; nothing is removed without `--yes`.

What may be removed is decided conservatively. An interrupted create (manifest `creating`, its
creator process gone) is garbage whoever made it. Anything else is checked against the stacks of
the project in `--cwd`, read through the Automation API like the other commands: only what that
project (same directory, same Pulumi backend) created and none of its stacks holds any more goes;
other projects' items are listed as not checked. A reservation whose provider still runs, or that
any of the project's stacks holds, is never touched, nor are namespaces in which something runs
from a run dir that still exists elsewhere (a test's, a benchmark's).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Awaitable, Callable, Optional

from ..testbeds.local import manifest
from ..testbeds.local.naming import PREFIX_RE, reservation_id
from . import cache
from .stacks import RESERVATION, CliError, _workspace, export, reveal

RUN_ROOT = "/tmp/pulumi-testbed"  # LocalTestbed's default
EMPTY_MIN_AGE = 60.0  # seconds: an empty stray namespace younger than this may be a create under way elsewhere
NAMESPACE_PREFIX = re.compile(r"^(tb-[a-z0-9_]{1,12}-[0-9a-f]{6}-)")

Progress = Callable[[str], Awaitable[None]]


@dataclass
class Finding:
    what: str
    why: str
    remove: Optional[Callable[[Progress], Awaitable[None]]] = None  # None: listed, never removed
    local: bool = True  # removing it needs root (namespaces, processes)


@dataclass
class Project:
    """What the `--cwd` project's stacks hold, to check local items against."""

    dir: str
    name: str
    backend: str
    stacks: set[str]
    ids: dict[str, str]  # reservation id → the stack holding it
    keys: set[str]  # private keys of every reservation of those stacks


@dataclass
class Plan:
    project: Project
    removable: list[Finding] = field(default_factory=list)
    unchecked: list[Finding] = field(default_factory=list)
    kept: list[Finding] = field(default_factory=list)


def read_project(cwd: str) -> Project:
    """Every stack of the project, exported (secrets shown: the keys identify the CLI's files)."""
    cwd = os.path.realpath(cwd)
    ws = _workspace(cwd)
    try:
        name = ws.project_settings().name
        stacks = {s.name for s in ws.list_stacks()}
    except Exception as err:  # noqa: BLE001 - never decide anything from a project we could not read
        raise CliError(f"could not list the stacks of the project in {cwd}: {err}") from None
    ids: dict[str, str] = {}
    keys: set[str] = set()
    for stack in sorted(stacks):
        _, deployment = export(cwd, stack)
        for r in deployment.get("resources") or []:
            if r.get("type") != RESERVATION:
                continue
            if r.get("id"):
                ids[r["id"]] = stack
            outputs = reveal(r.get("outputs") or {})
            key = outputs.get("sshPrivateKey") or ((outputs.get("inventory") or {}).get("ssh") or {}).get("privateKey")
            if isinstance(key, str) and key:
                keys.add(key if key.endswith("\n") else key + "\n")
    return Project(cwd, name, manifest.backend_hash(), stacks, ids, keys)


def _owner(urn: str) -> Optional[tuple[str, str]]:
    """(stack, project) of `urn:pulumi:<stack>::<project>::…`."""
    parts = urn.split("::")
    if len(parts) < 3 or not parts[0].startswith("urn:pulumi:"):
        return None
    return parts[0].removeprefix("urn:pulumi:"), parts[1]


def _theirs(data: dict[str, Any], project: Project) -> Optional[str]:
    """Why a manifest (or a CLI workspace's origin) cannot be checked against `project`, or None."""
    where = data.get("projectDir") or data.get("project")
    if not where:
        return "where it came from is not recorded (made by an older pulumi-testbed)"
    if os.path.realpath(where) != project.dir:
        return f"of the project in {where}: run `testbed gc --cwd {where}` to check it"
    if data.get("backend") != project.backend:
        return "made with another Pulumi backend than this shell's (PULUMI_BACKEND_URL, PULUMI_HOME)"
    return None


def _reservations(plan: Plan, run_root: str) -> None:
    from ..testbeds.local.testbed import LocalTestbed

    testbed = LocalTestbed(run_root=run_root)
    project = plan.project
    for run_dir, data in manifest.all_run_dirs(run_root):
        prefix = os.path.basename(run_dir)
        if data.get("prefix") != prefix or not PREFIX_RE.match(prefix):
            plan.unchecked.append(Finding(f"run dir {run_dir}", "its manifest does not name it"))
            continue
        rid = reservation_id(prefix)
        what = f"reservation {rid} (run dir {run_dir})"
        creator = data.get("creatorPid")
        if manifest.interrupted(run_dir, data):
            plan.removable.append(
                Finding(what, f"left by an interrupted create (its provider, pid {creator}, is gone)", partial(_leftover, testbed, run_dir))
            )
            continue
        if data.get("status") == manifest.CREATING:
            plan.kept.append(Finding(what, f"being created (by pid {creator})"))
            continue
        owner = _owner(str(data.get("owner") or ""))
        if owner is None:
            plan.unchecked.append(Finding(what, "no owner recorded"))
            continue
        stack, owner_project = owner
        why_not = _theirs(data, project)
        if owner_project != project.name:
            where = data.get("projectDir")
            why_not = f"of project `{owner_project}`" + (f" in {where}: run `testbed gc --cwd {where}` to check it" if where else "")
        if why_not:
            plan.unchecked.append(Finding(what, why_not))
            continue
        if manifest.creator_alive(data):  # its `pulumi up` may not have recorded it yet
            plan.kept.append(Finding(what, f"its provider (pid {creator}) still runs"))
        elif stack not in project.stacks:
            plan.removable.append(Finding(what, f"its stack `{stack}` no longer exists", partial(testbed.release_unrecorded, run_dir)))
        elif rid not in project.ids:
            plan.removable.append(Finding(what, f"stack `{stack}` no longer holds it", partial(testbed.release_unrecorded, run_dir)))
        else:
            plan.kept.append(Finding(what, f"held by stack `{project.ids[rid]}`"))


async def _leftover(testbed: Any, run_dir: str, progress: Progress) -> None:
    if not await testbed.release_leftover(run_dir, progress):
        await progress(f"{run_dir}: released meanwhile by someone else, or no longer an interrupted create")


def _host_run_dir(pid: int) -> Optional[bool]:
    """For a host's process (its /etc/ssh is a private one, bind-mounted from its run dir):
    whether that directory still exists (a deleted one has no links left). None for any other
    process (a ProxyCommand's `nc` in a switch, someone's shell); unreadable counts as existing."""
    try:
        theirs = os.stat(f"/proc/{pid}/root/etc/ssh")
    except OSError:
        return True
    ours = os.stat("/etc/ssh")
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        return None
    return theirs.st_nlink > 0


async def _teardown(names: list[str], progress: Progress) -> None:
    from ..hosts.netns import teardown

    await teardown(names, None)


def _strays(plan: Plan, run_root: str, now: float) -> None:
    from ..hosts.netns import list_namespaces, namespace_id, namespace_path, pids_in

    groups: dict[str, list[str]] = {}
    for name in list_namespaces("tb-"):
        m = NAMESPACE_PREFIX.match(name)
        if m and PREFIX_RE.match(m.group(1)):
            groups.setdefault(m.group(1), []).append(name)
    for prefix, names in sorted(groups.items()):
        if os.path.isdir(os.path.join(run_root, prefix)):
            continue  # a reservation: judged above
        rid = reservation_id(prefix)
        what = f"{len(names)} namespace(s) {prefix}* (no run dir)"
        if rid in plan.project.ids:
            plan.kept.append(Finding(what, f"held by stack `{plan.project.ids[rid]}` (its next `pulumi up` restores the run dir)"))
            continue
        pids = pids_in([i for i in (namespace_id(n) for n in names) if i is not None])
        hosts = [state for state in (_host_run_dir(p) for p in pids) if state is not None]
        remove = partial(_teardown, names)
        if hosts:
            if not any(hosts):
                plan.removable.append(Finding(what, f"its run dir was deleted; {len(pids)} process(es) still run inside", remove))
            else:
                plan.unchecked.append(Finding(what, "its hosts run from a run dir elsewhere (a test's, a benchmark's?)"))
            continue
        try:
            age = now - max(os.lstat(namespace_path(n)).st_mtime for n in names)
        except OSError:
            continue  # deleted meanwhile
        if age < EMPTY_MIN_AGE:
            plan.unchecked.append(Finding(what, f"no host runs inside, made {age:.0f} s ago: a create may be under way"))
        else:
            plan.removable.append(Finding(what, "no host runs inside" + (f" ({len(pids)} other process(es))" if pids else ""), remove))


async def _remove_files(wdir: str, sockets: list[str], progress: Progress) -> None:
    await asyncio.to_thread(cache.remove, [wdir], sockets)


def _workspaces(plan: Plan) -> None:
    project = plan.project
    kept_control: set[str] = set()
    doomed: list[tuple[str, dict[str, Any], Optional[str]]] = []
    for wdir in cache.workspaces():
        control = cache.control_dir_of(wdir)
        if cache.key_of(wdir) in project.keys:
            kept_control.add(control or "")
            plan.kept.append(Finding(f"CLI files {wdir}", "their key is a reservation's of the project's stacks"))
            continue
        origin = cache.origin_of(wdir)
        why_not = _theirs(origin, project)
        if why_not:
            plan.unchecked.append(Finding(f"CLI files {wdir}", why_not))
            kept_control.add(control or "")
        else:
            doomed.append((wdir, origin, control))
    for wdir, origin, control in doomed:
        sockets = [control] if control and control not in kept_control and os.path.isdir(control) else []
        plan.removable.append(
            Finding(
                f"CLI files {wdir} (stack `{origin.get('stack')}`, reservation `{origin.get('reservation')}`, a private key)",
                "no reservation of the project's stacks uses their key",
                partial(_remove_files, wdir, sockets),
                local=False,
            )
        )


def plan(cwd: str, run_root: str = RUN_ROOT, now: Optional[float] = None) -> Plan:
    """What gc would remove, keep, and could not check (reads only)."""
    result = Plan(read_project(cwd))
    _reservations(result, run_root)
    _strays(result, run_root, time.time() if now is None else now)
    _workspaces(result)
    return result


def _print_list(title: str, findings: list[Finding]) -> None:
    if findings:
        print(title)
        for f in findings:
            print(f"  {f.what}: {f.why}")


async def _remove(findings: list[Finding]) -> int:
    async def progress(message: str) -> None:
        print(f"    {message}", flush=True)

    failed = 0
    for f in findings:
        print(f"removing {f.what}", flush=True)
        assert f.remove is not None
        try:
            await f.remove(progress)
        except Exception as err:  # noqa: BLE001 - one failure must not stop the rest
            failed += 1
            print(f"    failed: {err}", flush=True)
    return failed


def gc(cwd: str, yes: bool) -> int:
    """List (and with `yes`, remove) the leftovers; 1 when a removal failed."""
    result = plan(cwd)
    p = result.project
    stacks = ", ".join(sorted(p.stacks)) or "none"
    print(f"project `{p.name}` ({p.dir}); its stacks: {stacks}")
    _print_list("not checked (left alone):", result.unchecked)
    if result.kept:
        print(f"in use: {len(result.kept)} item(s) (kept)")
    if not result.removable:
        print("nothing to remove")
        return 0
    _print_list("to remove:" if yes else "would remove:", result.removable)
    if not yes:
        print("run `testbed gc --yes` to remove them")
        return 0
    if os.geteuid() != 0 and any(f.local for f in result.removable):
        raise CliError("removing local reservations and namespaces needs root")
    failed = asyncio.run(_remove(result.removable))
    print(f"removed {len(result.removable) - failed} item(s)" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
