"""Ansible plays as data: check the tasks, write the play, run it with `ansible-playbook` on the
hosts a pattern matches, and collect per-host stats, per-task results and registered values.

Why ansible-playbook and not our SSH fast path: a Play is made of Ansible modules (apt,
template, copy, lineinfile, service…), whose idempotence and `changed` reporting are the point.
It runs in the same workspace as the other engines (inventory, pinned host keys, ControlMaster
sockets, pipelining; see ansible_engine.environment), so a Play after a Command reuses its
authenticated connections. Results come from the `testbed_events` callback, one JSON line per
event, so a Cancel still leaves the results of what already ran.

Tasks are plain Ansible task objects (`{"name": ..., "ansible.builtin.copy": {...}, "register":
...}`), templated by Ansible as usual (`{{ hostvars['server-1'].testbed_networks.exp }}`).
Relative `src` paths of file-shipping modules are resolved against the Pulumi program's
directory (the provider's working directory), where a researcher keeps their templates.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from ..common import deadlines, processes
from ..common.private_files import unlink_quietly, write_private
from . import ssh_engine
from .ansible_engine import HARD_GRACE, STDERR_TAIL, EventReader, environment
from .api import Progress, RemoteError
from .inventory import parse
from .materialize import workspace
from .patterns import IMPORT_LOCK, match_hosts

# Task keywords of ansible-core (playbook/task.py, base.py, conditional, taggable…): any other
# key of a task is its module.
TASK_KEYWORDS = {
    "name",
    "action",
    "local_action",
    "args",
    "register",
    "when",
    "loop",
    "loop_control",
    "until",
    "retries",
    "delay",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "become_exe",
    "environment",
    "vars",
    "tags",
    "notify",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "no_log",
    "check_mode",
    "diff",
    "timeout",
    "throttle",
    "any_errors_fatal",
    "module_defaults",
    "collections",
    "connection",
    "remote_user",
    "port",
    "debugger",
    "async",
    "poll",
    "listen",
    "when_unsafe",
}
BLOCK_KEYS = ("block", "rescue", "always")
FREE_FORM = {"shell", "command", "raw", "script", "win_shell", "win_command", "meta", "include_tasks", "import_tasks"}
# Modules whose `src` is a file on the controller.
SHIPPING = {"copy", "template", "script", "unarchive", "assemble"}
OUTPUT_LIMIT = 4000  # characters of stdout/stderr/msg kept per task result in the outputs
PLAY_NAME = "pulumi-testbed play"


def short_module(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def module_of(task: dict[str, Any]) -> list[str]:
    """The keys of a task that are not task keywords: exactly one, its module, when valid."""
    return [k for k in task if k not in TASK_KEYWORDS and not k.startswith("with_")]


_loader_ready = False


def module_exists(name: str) -> bool:
    """Whether ansible-core can resolve `name` (short, FQCN, or from an installed collection) to
    a module or an action plugin. Ansible's warnings about unknown collections are swallowed:
    the Check failure says it better."""
    import contextlib
    import io

    from ansible.plugins.loader import action_loader, init_plugin_loader, module_loader

    global _loader_ready
    with IMPORT_LOCK, contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        if not _loader_ready:
            init_plugin_loader()  # the collection finder, without which FQCNs never resolve
            _loader_ready = True
        for loader in (module_loader, action_loader):
            try:
                found = loader.find_plugin_with_context(name)
            except Exception:  # noqa: BLE001 - a malformed name: not found
                continue
            if found.resolved:
                return True
    return False


def warm_up() -> None:
    """Load ansible-core's plugin loader now (from a thread), not on the first Check."""
    try:
        module_exists("ansible.builtin.command")
    except Exception:  # noqa: BLE001 - reported where it matters, on first use
        pass


def check_tasks(tasks: Any, prop: str) -> list[tuple[str, str]]:
    """(property, reason) for every malformed task, naming the task; [] when all are valid."""
    if not isinstance(tasks, list) or not tasks:
        return [(prop, "must be a non-empty list of Ansible tasks, e.g. [{name: …, ansible.builtin.copy: {dest: …, content: …}}]")]
    problems: list[tuple[str, str]] = []
    for i, task in enumerate(tasks):
        where = f"{prop}[{i}]"
        if not isinstance(task, dict):
            problems.append((where, "must be an object: one module and its arguments, plus task keywords (name, register, when…)"))
            continue
        label = f"task `{task['name']}`" if isinstance(task.get("name"), str) else "this task"
        if any(k in task for k in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                if key in task:
                    problems += check_tasks(task[key], f"{where}.{key}")
            continue
        modules = module_of(task)
        if len(modules) != 1:
            what = f"several modules ({', '.join(modules)})" if modules else "no module"
            problems.append((where, f"{label} has {what}: give exactly one, e.g. `ansible.builtin.shell: …`"))
            continue
        module = modules[0]
        if not module_exists(module):
            problems.append((f"{where}.{module}", f"{label}: unknown Ansible module `{module}` (ansible-core {_ansible_version()})"))
            continue
        args = task[module]
        if not isinstance(args, (dict, str)) and args is not None:
            problems.append((f"{where}.{module}", f"{label}: arguments must be an object or a string"))
        elif isinstance(args, str) and short_module(module) not in FREE_FORM and "=" not in args:
            problems.append((f"{where}.{module}", f"{label}: `{module}` takes `key=value` arguments or an object, not `{args}`"))
    return problems


def _ansible_version() -> str:
    try:
        from ansible.release import __version__

        return __version__
    except ImportError:
        return "not installed"


def _shipped_src(module: str, args: Any) -> Optional[str]:
    """The controller file a task ships: the literal `src` of copy/template/script/… (not a
    templated one, not an unarchive of a file already on the host)."""
    if short_module(module) not in SHIPPING or not isinstance(args, dict) or not isinstance(args.get("src"), str):
        return None
    if (short_module(module) == "unarchive" and args.get("remote_src")) or "{{" in args["src"]:
        return None
    return args["src"]


def local_sources(tasks: Any, base: str) -> list[str]:
    """The controller files the tasks ship (relative `src` of copy/template/script…), absolute."""
    found: list[str] = []
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        for key in BLOCK_KEYS:
            found += local_sources(task.get(key), base)
        for module in module_of(task):
            src = _shipped_src(module, task.get(module))
            if src is not None:
                found.append(os.path.join(base, os.path.expanduser(src)))
    return found


# What a playbook reads beside itself, by Ansible's conventions (not the whole directory: a
# playbook often sits in the Pulumi project, whose stack config files change on their own).
PLAYBOOK_DIRS = ("templates", "files", "roles", "vars", "group_vars", "host_vars", "tasks", "handlers", "library")


def playbook_files(playbook: str) -> list[str]:
    """The playbook file and the conventional directories beside it that exist."""
    here = os.path.dirname(os.path.abspath(playbook))
    return [os.path.abspath(playbook)] + [os.path.join(here, d) for d in PLAYBOOK_DIRS if os.path.isdir(os.path.join(here, d))]


def content_hash(paths: list[str]) -> str:
    """A digest of files and directory trees (names and bytes), so an edit re-runs the play.
    Raises OSError naming an unreadable path."""
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    digest.update(os.path.relpath(full, path).encode() + b"\0")
                    with open(full, "rb") as f:
                        digest.update(hashlib.sha256(f.read()).digest())
        else:
            with open(path, "rb") as f:
                digest.update(path.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:32]


def absolute_sources(tasks: list[Any], base: str) -> list[Any]:
    """The tasks with relative `src` of shipping modules made absolute against `base`."""
    out = []
    for task in tasks:
        if not isinstance(task, dict):
            out.append(task)
            continue
        task = dict(task)
        for key in BLOCK_KEYS:
            if isinstance(task.get(key), list):
                task[key] = absolute_sources(task[key], base)
        for module in module_of(task):
            src = _shipped_src(module, task.get(module))
            if src is not None:
                task[module] = {**task[module], "src": os.path.join(base, os.path.expanduser(src))}
        out.append(task)
    return out


def play_text(tasks: list[Any], gather_facts: bool, become: bool) -> str:
    """One play on `all` (narrowed by --limit to the matched hosts)."""
    play: dict[str, Any] = {"name": PLAY_NAME, "hosts": "all", "gather_facts": bool(gather_facts), "tasks": tasks}
    if become:
        play["become"] = True
    return json.dumps([play], indent=1)  # JSON is YAML; no quoting pitfalls


@dataclass
class TaskResult:
    task: str
    host: str
    status: str  # ok | changed | failed | skipped | unreachable
    msg: str = ""
    rc: Optional[int] = None
    stdout: str = ""
    stderr: str = ""


@dataclass
class PlayReport:
    hosts: list[str]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    results: list[TaskResult] = field(default_factory=list)
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcome: str = processes.EXITED
    returncode: Optional[int] = None
    stderr: str = ""

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results if r.status in ("failed", "unreachable")]

    def host_stats(self) -> list[dict[str, Any]]:
        rows = []
        for host in self.hosts:
            s = self.stats.get(host, {})
            rows.append(
                {
                    "host": host,
                    "ok": int(s.get("ok", 0)),
                    "changed": int(s.get("changed", 0)),
                    "failed": int(s.get("failures", 0)),
                    "unreachable": int(s.get("unreachable", 0)),
                    "skipped": int(s.get("skipped", 0)),
                }
            )
        return rows

    @property
    def changed(self) -> int:
        return sum(r["changed"] for r in self.host_stats())


def _event_result(event: dict[str, Any]) -> TaskResult:
    res = event.get("result") or {}
    kind = event["tb"]
    status = "changed" if kind == "ok" and event.get("changed") else kind
    msg = str(res.get("msg") or "")
    if kind == "failed" and not msg:
        msg = "\n".join(str(res[k]) for k in ("module_stderr", "module_stdout") if res.get(k))
    rc = res.get("rc")
    return TaskResult(
        str(event.get("task") or ""),
        str(event["host"]),
        status,
        msg.strip(),
        rc if isinstance(rc, int) else None,
        str(res.get("stdout") or "").rstrip("\n"),
        str(res.get("stderr") or "").rstrip("\n"),
    )


async def run_play(
    inventory: dict[str, Any],
    pattern: str,
    tasks: Optional[list[Any]] = None,
    *,
    playbook: Optional[str] = None,
    extra_vars: Optional[dict[str, Any]] = None,
    host_vars: Optional[dict[str, dict[str, Any]]] = None,
    gather_facts: bool = False,
    become: bool = False,
    base_dir: Optional[str] = None,
    timeout: float = 0,
    cancelled: Optional[asyncio.Event] = None,
    progress: Optional[Progress] = None,
) -> PlayReport:
    """Run `tasks` (or the playbook file `playbook`, its plays limited to the matched hosts) on
    the hosts `pattern` matches. Raises PatternError / RemoteError when nothing could start."""
    if importlib.util.find_spec("ansible") is None:
        raise RemoteError(f"ansible-core is not installed for {sys.executable}: a Play cannot run")
    inv = parse(inventory)
    names = match_hosts(inv, pattern)
    unknown = sorted(set(host_vars or {}) - {h.name for h in inv.hosts})
    if unknown:
        raise RemoteError(f"hostVars name unknown host(s): {', '.join(unknown)}")
    if cancelled is not None and cancelled.is_set():
        raise RemoteError("cancelled before the play started")
    ws = await workspace(inv)
    run_id = uuid.uuid4().hex[:12]
    files: list[str] = []

    def private(name: str, text: str) -> str:
        path = os.path.join(ws.dir, f"play-{run_id}-{name}")
        write_private(path, text)
        files.append(path)
        return path

    if playbook is None:
        book = await asyncio.to_thread(
            private, "play.yml", play_text(absolute_sources(tasks or [], base_dir or os.getcwd()), gather_facts, become)
        )
    else:
        book = playbook
    argv = [sys.executable, "-m", "ansible", "playbook", "-i", ws.ansible_inventory]
    if host_vars:
        extra_inv = {"all": {"hosts": {h: dict(v) for h, v in host_vars.items()}}}
        argv += ["-i", await asyncio.to_thread(private, "hostvars.yml", json.dumps(extra_inv))]
    if extra_vars:
        argv += ["-e", "@" + await asyncio.to_thread(private, "vars.json", json.dumps(extra_vars))]
    argv += ["-f", str(max(1, len(names))), "--limit", ",".join(names), book]

    report = PlayReport(hosts=names)
    pending: list[asyncio.Future] = []

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("tb")
        if kind == "stats":
            report.stats = event.get("stats") or {}
            return
        if kind not in ("ok", "failed", "skipped", "unreachable") or event.get("host") not in names:
            return
        result = _event_result(event)
        report.results.append(result)
        reg = event.get("registered")
        if reg:
            report.registered.setdefault(result.host, {})[reg["var"]] = reg["value"]
        if progress is not None:
            pending.append(asyncio.ensure_future(progress(f"task `{result.task}`: {result.host} {result.status}")))

    deadline = deadlines.after(timeout + HARD_GRACE) if timeout > 0 else None
    if progress is not None:
        await progress(f"running the play on {len(names)} host(s)")
    # Masters first, one per host under its lock (see ssh_engine.ensure_master): a step running
    # beside this one cannot race Ansible's connections into a warning.
    await asyncio.gather(*(ssh_engine.ensure_master(ws, h, deadline, cancelled) for h in names))
    env = environment(ws)
    if playbook is not None:
        env["ANSIBLE_ROLES_PATH"] = os.path.join(os.path.dirname(os.path.abspath(playbook)), "roles")
    events = EventReader(on_event)
    try:
        finished = await processes.run(
            argv,
            env=env,
            deadline=deadline,
            cancelled=cancelled,
            cwd=base_dir or os.getcwd(),
            term_grace=1.0,
            kill_group=True,
            on_stdout=events.feed,
        )
    finally:
        for path in files:
            await asyncio.to_thread(unlink_quietly, path)
    events.close()
    if pending:
        await asyncio.gather(*pending)
    report.outcome, report.returncode = finished.outcome, finished.returncode
    report.stderr = processes.text(finished.stderr)[-STDERR_TAIL:]
    if not report.results and not report.stats and finished.outcome == processes.EXITED and finished.returncode:
        tail = report.stderr or processes.text(finished.stdout)[-STDERR_TAIL:]
        raise RemoteError(f"ansible-playbook exited with {finished.returncode} before any task ran: {tail or '(no output)'}")
    return report
