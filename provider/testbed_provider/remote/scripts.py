"""The POSIX sh scripts run on the hosts: a step's wrapper, stopping it, background start/stop.

Both engines run the same scripts, which is what keeps their results identical. The user's
command is never spliced into script text unquoted: it is assigned to a variable with
`shlex.quote` and run as `/bin/sh -c "$cmd" </dev/null`, exactly how Ansible's shell module
runs it (`/bin/sh -c <cmd>`, stdin at end of file).

Killing remote work. Closing an SSH channel does not stop a command that has no terminal, so
every step's wrapper records its process group in `~/.testbed/run/<run id>` (removed when it
ends); on timeout or Cancel the controller runs `kill_script`, which signals that group (TERM,
then KILL after ~2 s). Background commands run under `setsid` in their own session; their
process group is recorded in `~/.testbed/bg/<tag>.pid` together with the leader's start time
(`<tag>.start`), so a stale pidfile whose pid was reused by another process is never acted
upon. Nothing is ever killed by name: on the local testbed all hosts share one kernel, and
`pkill` would hit other hosts and other stacks.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Mapping, Optional

RUN_DIR = ".testbed/run"  # relative to the login (or become) user's home
BG_DIR = ".testbed/bg"
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOG_TAIL = 2000  # bytes of a background command's log quoted when it fails at once

# Helpers shared by the scripts (variables are prefixed so a user's environment cannot clash).
PRELUDE = r"""
__tb_stat() { # $1 pid -> __tb_s = the fields of /proc/<pid>/stat after the command name
  read -r __tb_s 2>/dev/null </proc/"$1"/stat || return 1
  __tb_s=${__tb_s##*) }
}
__tb_alive() { # $1 pid: exists and is not a zombie
  __tb_stat "$1" || return 1
  case $__tb_s in Z*|X*|x*) return 1;; esac
}
__tb_start_time() { # $1 pid -> its start time (clock ticks since boot), or nothing
  __tb_stat "$1" || return 0
  set -- $__tb_s
  echo "${20}"
}
__tb_group_alive() { # $1 pgid: some process of the group is not a zombie
  __tb_pg=$1
  kill -0 -"$1" 2>/dev/null || return 1
  for __tb_sf in /proc/[0-9]*/stat; do
    read -r __tb_s 2>/dev/null <"$__tb_sf" || continue
    __tb_s=${__tb_s##*) }
    set -- $__tb_s
    [ "$3" = "$__tb_pg" ] && case $1 in Z*|X*|x*) ;; *) return 0;; esac
  done
  return 1
}
__tb_wait_group() { # $1 pgid, $2 tenths of a second: wait until the group is gone
  __tb_i=0
  while [ "$__tb_i" -lt "$2" ]; do
    __tb_group_alive "$1" || return 0
    sleep 0.1; __tb_i=$((__tb_i + 1))
  done
  ! __tb_group_alive "$1"
}
__tb_stop_group() { # $1 pgid: TERM, up to 2 s, KILL, up to 2 s more; fails if it survives
  kill -TERM -"$1" 2>/dev/null
  __tb_wait_group "$1" 20 && return 0
  kill -KILL -"$1" 2>/dev/null
  __tb_wait_group "$1" 20
}
"""


# Ansible runs the shell module from Python ≥ 3.7, which coerces a C/POSIX character locale to
# C.UTF-8 and exports LC_CTYPE (PEP 538); commands then see LC_CTYPE=C.UTF-8. Do the same, so a
# command behaves (and prints) the same whichever engine runs it.
LOCALE = """case ${LC_ALL:-} in '') case ${LC_CTYPE:-${LANG:-}} in ''|C|POSIX) export LC_CTYPE=C.UTF-8;; esac;; esac
"""


def exports(environment: Mapping[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in environment.items()) + LOCALE


def step_script(command: str, run_id: str, environment: Mapping[str, str] | None = None) -> str:
    """The wrapper of one foreground step: record the process group, run the command with
    stdin at EOF, forget the group, exit with the command's status."""
    return (
        exports(environment or {})
        + f"__tb_c={shlex.quote(command)}\n"
        + f'__tb_p="$HOME/{RUN_DIR}/{run_id}"\n'
        + f'{{ [ -d "$HOME/{RUN_DIR}" ] || mkdir -p "$HOME/{RUN_DIR}"; read -r __tb_s </proc/$$/stat && '
        + '__tb_s=${__tb_s##*) } && set -- $__tb_s && echo "$3" >"$__tb_p"; } 2>/dev/null\n'
        + '/bin/sh -c "$__tb_c" </dev/null\n'
        + "__tb_r=$?\n"
        + 'rm -f "$__tb_p"\n'
        + 'exit "$__tb_r"\n'
    )


def kill_script(run_id: str) -> str:
    """Stop what `step_script(run_id)` is still running (nothing if it has finished)."""
    return PRELUDE + (
        f'__tb_p="$HOME/{RUN_DIR}/{run_id}"\n'
        '[ -f "$__tb_p" ] || exit 0\n'
        'read -r __tb_g <"$__tb_p"\n'
        'rm -f "$__tb_p"\n'
        "case $__tb_g in ''|*[!0-9]*) exit 0;; esac\n"
        '__tb_stop_group "$__tb_g" && exit 0\n'
        'echo "process group $__tb_g survived SIGKILL" >&2\n'
        "exit 1\n"
    )


_OURS = r"""
__tb_ours() { # $1 pgid, $2 recorded start time of its leader: is that group still ours and alive?
  if __tb_stat "$1"; then
    [ "$(__tb_start_time "$1")" = "$2" ] || return 1  # the pid now belongs to someone else
  fi
  __tb_group_alive "$1"
}
"""


@dataclass(frozen=True)
class Readiness:
    """When a background command is ready: `port` (a TCP socket listens on it, on any address of
    the host), `command` (a shell command that exits 0), or both; within `timeout` seconds."""

    port: Optional[int] = None
    command: Optional[str] = None
    timeout: float = 60.0

    def describe(self) -> str:
        """What is waited for, for progress lines: never the command's text (it may hold secrets)."""
        parts = ([f"TCP port {self.port} listening"] if self.port is not None else []) + (
            ["the ready command exiting 0"] if self.command is not None else []
        )
        return " and ".join(parts)


# Readiness checks, run on the host between starts and successes (see bg_start_script).
READY = r"""
__tb_now() { # centiseconds since boot, from /proc/uptime ("12345.67 …")
  read -r __tb_up __tb_rest </proc/uptime
  __tb_cs=${__tb_up#*.}
  echo $(( ${__tb_up%.*} * 100 + ${__tb_cs#0} ))
}
__tb_listening() { # $1 port as 4 upper-case hex digits: some TCP socket listens on it (IPv4 or IPv6)
  for __tb_nf in /proc/net/tcp /proc/net/tcp6; do
    [ -r "$__tb_nf" ] || continue
    while read -r __tb_n1 __tb_n2 __tb_n3 __tb_n4 __tb_n5; do
      [ "$__tb_n4" = 0A ] && case $__tb_n2 in *:"$1") return 0;; esac
    done <"$__tb_nf"
  done
  return 1
}
"""


def bg_start_script(
    command: str,
    tag: str,
    environment: Mapping[str, str] | None = None,
    settle_tenths: int = 3,
    ready: Optional[Readiness] = None,
    keep_running: bool = False,
) -> str:
    """Start `command` detached (own session, stdin /dev/null, output to the log), record its
    process group, and report a failure that happens within ~0.3 s (e.g. command not found).

    With `ready`, wait instead until the command is ready (a TCP socket listens on `ready.port`
    — checked in /proc/net, without connecting, since a probe connection can occupy a server
    that serves one client at a time, like iperf3 —, and/or `ready.command` exits 0), polling
    every 0.1 s. A port already listening before the start is refused (its readiness could not
    be told). Fails, stopping the process group, if the command exits first or is not ready
    within `ready.timeout` seconds; the last line of stderr says why.

    A command of that tag still running is an error, or with `keep_running` a success (its
    stdout says `already running`): a service converging to "running" starts only what died."""
    script = (
        PRELUDE
        + _OURS
        + (READY if ready else "")
        + exports(environment or {})
        + (
            f"__tb_c={shlex.quote(command)}\n"
            f"__tb_t={shlex.quote(tag)}\n"
            f'__tb_d="$HOME/{BG_DIR}"\n'
            'mkdir -p "$__tb_d" || exit 1\n'
            'if [ -f "$__tb_d/$__tb_t.pid" ]; then\n'
            '  read -r __tb_g <"$__tb_d/$__tb_t.pid"\n'
            '  read -r __tb_st 2>/dev/null <"$__tb_d/$__tb_t.start"\n'
            '  case $__tb_g in ""|*[!0-9]*) ;; *)\n'
            '    if __tb_ours "$__tb_g" "$__tb_st"; then\n'
            + (
                '      echo "already running (process group $__tb_g)"\n      exit 0\n'
                if keep_running
                else '      echo "background command \\`$__tb_t\\` is already running (process group $__tb_g); stop it first" >&2\n'
                "      exit 1\n"
            )
            + "    fi;;\n"
            "  esac\n"
            "fi\n"
        )
    )
    if ready is not None and ready.port is not None:
        script += (
            f"if __tb_listening {ready.port:04X}; then\n"
            f'  echo "TCP port {ready.port} is already in use on this host before the command started: another program '
            'listens there (stop it, or choose another port)" >&2\n'
            "  exit 1\n"
            "fi\n"
        )
    script += (
        'setsid /bin/sh -c "$__tb_c" </dev/null >"$__tb_d/$__tb_t.log" 2>&1 &\n'
        "__tb_g=$!\n"
        '__tb_start_time "$__tb_g" >"$__tb_d/$__tb_t.start"\n'
        'echo "$__tb_g" >"$__tb_d/$__tb_t.pid"\n'
    )
    if ready is not None:
        return script + _ready_wait(ready)
    return script + (
        "__tb_i=0\n"
        f'while [ "$__tb_i" -lt {int(settle_tenths)} ] && __tb_alive "$__tb_g"; do sleep 0.1; __tb_i=$((__tb_i + 1)); done\n'
        'if __tb_alive "$__tb_g"; then\n'
        '  echo "started in the background: process group $__tb_g, log $__tb_d/$__tb_t.log"\n'
        "  exit 0\n"
        "fi\n"
        'wait "$__tb_g"\n'
        "__tb_r=$?\n"
        'if [ "$__tb_r" -ne 0 ]; then\n'
        f'  tail -c {LOG_TAIL} "$__tb_d/$__tb_t.log" >&2\n'
        '  rm -f "$__tb_d/$__tb_t.pid" "$__tb_d/$__tb_t.start"\n'
        '  exit "$__tb_r"\n'
        "fi\n"
        'echo "exited at once with status 0 (log $__tb_d/$__tb_t.log)"\n'
    )


def _ready_wait(ready: Readiness) -> str:
    """The end of bg_start_script with `ready`: poll until ready, exited or timed out."""
    limit_cs = max(1, int(round(ready.timeout * 100)))
    checks, what = [], []
    if ready.port is not None:
        checks.append(f"__tb_listening {ready.port:04X}")
        what.append(f"TCP port {ready.port} listening")
    if ready.command is not None:
        # Each try gets what is left of the time (`timeout`, where the host has it) and its
        # output kept for the failure message.
        checks.append(
            '{ __tb_left=$(( (__tb_lim - $(__tb_now) + __tb_t0 + 99) / 100 )); [ "$__tb_left" -ge 1 ] || __tb_left=1; '
            'if command -v timeout >/dev/null 2>&1; then timeout -k 1 "$__tb_left" /bin/sh -c "$__tb_rc"; '
            'else /bin/sh -c "$__tb_rc"; fi; } </dev/null >"$__tb_d/$__tb_t.ready" 2>&1; __tb_rr=$?; [ "$__tb_rr" -eq 0 ]'
        )
        what.append("the ready command exiting 0")
    why_not = []
    if ready.port is not None:
        why_not.append(f"nothing listens on TCP port {ready.port}")
    if ready.command is not None:
        why_not.append("the ready command last exited with status $__tb_rr$__tb_ro")
    ready_text = " and ".join(what)
    return (
        (f"__tb_rc={shlex.quote(ready.command)}\n" if ready.command is not None else "")
        + "__tb_rr=none\n"
        + "__tb_t0=$(__tb_now)\n"
        + f"__tb_lim={limit_cs}\n"
        + "__tb_x=\n"  # the leader's exit status, once it has exited
        + "__tb_fail() { # $1 status, $2 why (the last line of stderr)\n"
        + f'  tail -c {LOG_TAIL} "$__tb_d/$__tb_t.log" >&2\n'
        + '  __tb_stop_group "$__tb_g" 2>/dev/null\n'
        + '  rm -f "$__tb_d/$__tb_t.pid" "$__tb_d/$__tb_t.start" "$__tb_d/$__tb_t.ready"\n'
        + '  echo "$2" >&2\n'
        + '  exit "$1"\n'
        + "}\n"
        + "while :; do\n"
        + '  if [ -z "$__tb_x" ] && ! __tb_alive "$__tb_g"; then\n'
        + '    wait "$__tb_g"; __tb_x=$?\n'
        + '    [ "$__tb_x" -eq 0 ] || __tb_fail "$__tb_x" "the command exited with status $__tb_x before it was ready (its log is above)"\n'
        + "  fi\n"
        + '  if [ -n "$__tb_x" ] && ! __tb_group_alive "$__tb_g"; then\n'
        + '    __tb_fail 1 "the command exited with status 0 before it was ready (its log is above)"\n'
        + "  fi\n"
        + f"  if {' && '.join(checks)}; then\n"
        + "    __tb_e=$(( $(__tb_now) - __tb_t0 ))\n"
        + '    rm -f "$__tb_d/$__tb_t.ready"\n'
        + f'    printf "started in the background: process group %s, log %s; ready after %d.%02d s ({ready_text})\\n" '
        + '"$__tb_g" "$__tb_d/$__tb_t.log" $((__tb_e / 100)) $((__tb_e % 100))\n'
        + "    exit 0\n"
        + "  fi\n"
        + '  if [ $(( $(__tb_now) - __tb_t0 )) -ge "$__tb_lim" ]; then\n'
        + (
            '    __tb_ro=$(tail -c 300 "$__tb_d/$__tb_t.ready" 2>/dev/null | tr "\\n" " "); __tb_ro=${__tb_ro% }\n'
            '    [ -z "$__tb_ro" ] || __tb_ro=": $__tb_ro"; [ "$__tb_rr" != 124 ] || __tb_ro=" (timed out)$__tb_ro"\n'
            if ready.command is not None
            else ""
        )
        + f'    __tb_fail 1 "not ready after {ready.timeout:g} s: {" and ".join(why_not)} (the command was stopped; its log is above)"\n'
        + "  fi\n"
        + "  sleep 0.1\n"
        + "done\n"
    )


def bg_stop_script(tag: str) -> str:
    """Stop the process group `bg_start_script(tag)` recorded; success if it is gone already."""
    return (
        PRELUDE
        + _OURS
        + (
            f"__tb_t={shlex.quote(tag)}\n"
            f'__tb_d="$HOME/{BG_DIR}"\n'
            '__tb_f="$__tb_d/$__tb_t.pid"\n'
            'if [ ! -f "$__tb_f" ]; then echo "not running (no pidfile)"; exit 0; fi\n'
            'read -r __tb_g <"$__tb_f"\n'
            'read -r __tb_st 2>/dev/null <"$__tb_d/$__tb_t.start"\n'
            "case $__tb_g in\n"
            "  ''|*[!0-9]*) echo 'not running (unreadable pidfile)';;\n"
            "  *)\n"
            '    if __tb_ours "$__tb_g" "$__tb_st"; then\n'
            '      if __tb_stop_group "$__tb_g"; then echo "stopped process group $__tb_g"\n'
            '      else echo "process group $__tb_g survived SIGKILL" >&2; exit 1; fi\n'
            '    else echo "not running any more (process group $__tb_g is gone)"; fi;;\n'
            "esac\n"
            'rm -f "$__tb_f" "$__tb_d/$__tb_t.start"\n'
            "exit 0\n"
        )
    )
