"""Ansible stdout callback of pulumi-testbed: one JSON line per host event, as it happens.

The remote layer's Ansible engine reads these lines to get machine-readable per-host results
(and progress, and the results of hosts that finished before a Cancel) without a dependency
beyond ansible-core (whose `json` callback lives in a collection). Each line starts with
`{"tb":` so anything else Ansible prints on stdout is ignored by the reader.
"""

from __future__ import annotations

import json
import sys
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: testbed_events
    type: stdout
    short_description: one JSON line per host event (pulumi-testbed)
    description:
      - Prints {"tb":"start"|"ok"|"failed"|"unreachable"|"skipped", "host":..., "t":..., ...} lines.
"""
# Each event carries the task's name and `changed`; a registered result comes whole
# (`registered`: {var, value}); one {"tb":"stats","stats":{host: recap}} line ends the run.

KEYS = ("rc", "stdout", "stderr", "msg", "module_stdout", "module_stderr", "timedout", "start", "end")


def _plain(value):
    """Tagged/trusted ansible values → plain JSON-able Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "testbed_events"

    def _emit(self, event, host, **fields):
        line = json.dumps({"tb": event, "host": host, "t": time.time(), **fields})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _result(self, event, result):
        data = result.result if hasattr(result, "result") else result._result
        task = result.task if hasattr(result, "task") else result._task
        picked = {k: _plain(data[k]) for k in KEYS if k in data}
        extra = {"task": task.get_name(), "changed": bool(data.get("changed"))}
        register = getattr(task, "register", None)
        if register:
            value = {k: v for k, v in data.items() if k != "invocation" and not str(k).startswith("_ansible")}
            extra["registered"] = {"var": str(register), "value": _plain(value)}
        self._emit(event, result.host.get_name() if hasattr(result, "host") else result._host.get_name(), result=picked, **extra)

    def v2_runner_on_start(self, host, task):
        self._emit("start", host.get_name(), task=task.get_name())

    def v2_playbook_on_stats(self, stats):
        per_host = {h: _plain(stats.summarize(h)) for h in sorted(stats.processed)}
        self._emit("stats", None, stats=per_host)

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_playbook_on_no_hosts_matched(self):
        self._emit("no_hosts", None)
