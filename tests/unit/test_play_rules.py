"""Play Check and diff rules: bad tasks are named, shipped files are hashed, what re-runs."""

import asyncio
import os

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.remote.playbook import check_tasks, content_hash, local_sources, play_text
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.play import Play

from .test_command_rules import INVENTORY

TASKS = [{"name": "greet", "ansible.builtin.copy": {"dest": "/root/g", "content": "hi"}}]
BASE = {"inventory": INVENTORY, "on": "all", "tasks": TASKS}


def controller():
    return Play(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))


def failures(news):
    return {f.property: f.reason for f in asyncio.run(controller().check("p", {}, news)).failures}


def test_valid_tasks_and_modules_in_every_form():
    assert (
        check_tasks(
            TASKS
            + [
                {"shell": "echo hi", "register": "out", "changed_when": False},
                {"apt": "name=iperf3 state=present", "become": True},
                {"block": [{"debug": {"msg": "x"}}], "rescue": [{"ansible.builtin.fail": {"msg": "y"}}]},
            ],
            "tasks",
        )
        == []
    )
    assert failures(BASE) == {}


def test_bad_tasks_are_named():
    problems = dict(
        check_tasks(
            [
                {"name": "typo", "aptt": {"name": "x"}},
                {"name": "two", "copy": {}, "shell": "x"},
                "echo",
                {"name": "none", "when": "x"},
                {"copy": "just words"},
                {"community.general.nothing": {}},
            ],
            "tasks",
        )
    )
    assert problems["tasks[0].aptt"].startswith("task `typo`: unknown Ansible module `aptt` (ansible-core 2.")
    assert "several modules (copy, shell)" in problems["tasks[1]"]
    assert "must be an object" in problems["tasks[2]"]
    assert "has no module" in problems["tasks[3]"]
    assert "takes `key=value` arguments" in problems["tasks[4].copy"]
    assert "unknown Ansible module `community.general.nothing`" in problems["tasks[5].community.general.nothing"]
    assert "non-empty list" in check_tasks([], "tasks")[0][1]


def test_check_rules_on_the_resource(tmp_path):
    assert "required" in failures({"inventory": INVENTORY})["tasks"]
    assert "not both" in failures({**BASE, "playbook": "site.yml"})["playbook"]
    assert "no readable playbook file" in failures({"inventory": INVENTORY, "playbook": str(tmp_path / "none.yml")})["playbook"]
    assert "no host `db-1`" in failures({**BASE, "hostVars": {"db-1": {"x": 1}}})["hostVars.db-1"]
    assert "must be an object" in failures({**BASE, "vars": ["x"]})["vars"]
    assert "unknown property `task`" in failures({**BASE, "task": []})["task"]
    assert "nobody" in failures({**BASE, "on": "nobody*"})["on"]


def test_shipped_files_are_hashed_and_missing_ones_fail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.j2").write_text("a={{ a }}\n")
    tasks = [{"template": {"src": "t.j2", "dest": "/root/t"}}, {"copy": {"src": "{{ x }}", "dest": "/y"}}]
    assert local_sources(tasks, str(tmp_path)) == [str(tmp_path / "t.j2")]  # a templated src is not ours to read
    checked = asyncio.run(controller().check("p", {}, {**BASE, "tasks": tasks}))
    assert checked.failures == [] and len(checked.inputs["sourcesHash"]) == 32
    first = checked.inputs["sourcesHash"]
    (tmp_path / "t.j2").write_text("a={{ a }} edited\n")
    again = asyncio.run(controller().check("p", {}, {**BASE, "tasks": tasks})).inputs["sourcesHash"]
    assert again != first and content_hash([str(tmp_path / "t.j2")]) == again
    gone = failures({**BASE, "tasks": [{"copy": {"src": "missing.txt", "dest": "/x"}}]})
    assert "ships `missing.txt`, which does not exist" in gone["tasks"]
    os.remove(tmp_path / "t.j2")


def test_what_reruns_and_what_is_recorded():
    c = controller()
    assert c.diff({}, BASE, {**BASE, "vars": {"a": 1}}).detailed.keys() == {"vars"}
    assert c.diff({}, BASE, BASE).detailed == {}
    recorded = {**BASE, "destroyTasks": [{"shell": "true"}]}
    diff = c.diff({}, BASE, recorded)
    assert list(diff.detailed) == ["destroyTasks"] and not diff.replaces
    assert '"gather_facts": true' in play_text(TASKS, True, False) and '"become": true' in play_text(TASKS, False, True)
