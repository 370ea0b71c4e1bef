"""Command templates: rendered per host by ansible-core with a Play's variables, checked at
Check (failures name the property and the hosts), and deciding re-runs by what they render to."""

import asyncio
import copy

import pytest

from testbed_provider.config import ProviderConfig
from testbed_provider.protocol.codec import UNKNOWN, Secret
from testbed_provider.protocol.engine_log import EngineLog
from testbed_provider.remote.ansible_engine import playbook_text
from testbed_provider.remote.templating import TemplateError, is_template, render
from testbed_provider.resources.base import ProviderContext
from testbed_provider.resources.command import Command, rerun_due

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
INVENTORY = {
    "hosts": [
        {
            "name": "server-1",
            "address": "198.19.0.1",
            "roles": ["server"],
            "user": "root",
            "port": 22,
            "networks": [{"id": "experiment", "address": "198.18.0.1", "interface": "eth1", "cidr": "198.18.0.0/24"}],
            "vars": {"mode": "fast", "label": "{{ inventory_hostname }}-label"},
        },
        {
            "name": "client-1",
            "address": "198.19.0.2",
            "roles": ["client"],
            "user": "root",
            "port": 22,
            "networks": [{"id": "experiment", "address": "198.18.0.2", "interface": "eth1", "cidr": "198.18.0.0/24"}],
        },
        {
            "name": "client-2",
            "address": "198.19.0.3",
            "roles": ["client"],
            "user": "root",
            "port": 22,
            "networks": [{"id": "experiment", "address": "198.18.0.3", "interface": "eth1", "cidr": "198.18.0.0/24"}],
        },
    ],
    "groups": {"server": ["server-1"], "client": ["client-1", "client-2"]},
    "ssh": {"user": "root", "port": 22, "knownHosts": "server-1 ssh-ed25519 AAAA\n", "privateKey": Secret(KEY)},
}
SERVER = "{{ hostvars[groups['server'][0]].testbed_networks.experiment }}"
CLIENT = {"inventory": INVENTORY, "on": "client", "create": f"iperf3 -c {SERVER} -t {{{{ duration }}}}", "vars": {"duration": 10}}


def plain_inventory():
    inv = copy.deepcopy(INVENTORY)
    inv["ssh"]["privateKey"] = KEY
    return inv


def controller():
    return Command(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))


def check(**changes):
    return asyncio.run(controller().check("step", {}, {**CLIENT, **changes}))


# ---- rendering -------------------------------------------------------------------------------


def test_only_text_with_jinja_marks_is_a_template():
    assert is_template("echo {{ x }}") and is_template("{% if true %}x{% endif %}")
    for plain in ("iperf3 -s", "echo ${#PATH} {#", "awk '{print $1}'", "echo '{ {'"):
        assert not is_template(plain)
        assert render(plain_inventory(), ["client-1"], plain) == {"client-1": plain}  # byte for byte


def test_each_host_renders_its_own_command_with_a_plays_variables():
    rendered = render(
        plain_inventory(),
        ["client-1", "client-2"],
        f"iperf3 -c {SERVER} -p {{{{ 5201 + groups['client'].index(inventory_hostname) }}}} "
        "-B {{ testbed_networks.experiment }} # {{ testbed_roles | join(',') }} {{ group_names }} {{ ansible_host }}",
    )
    assert rendered == {
        "client-1": "iperf3 -c 198.18.0.1 -p 5201 -B 198.18.0.2 # client ['client'] 198.19.0.2",
        "client-2": "iperf3 -c 198.18.0.1 -p 5202 -B 198.18.0.3 # client ['client'] 198.19.0.3",
    }


def test_group_vars_extra_vars_and_nested_templates_as_in_a_play():
    inv = plain_inventory()
    out = render(
        inv,
        ["server-1"],
        "{{ mode }} {{ label }} {{ d }} {{ who }} {{ ansible_play_hosts }}",
        {"d": 3, "who": "{{ inventory_hostname }}", "mode": "overridden"},
    )
    # extra vars win over host vars (ansible-playbook -e), and a variable may itself be a template
    assert out == {"server-1": "overridden server-1-label 3 server-1 ['server-1']"}
    assert render(inv, ["client-1"], "{{ hostvars['server-1'].label }}") == {"client-1": "server-1-label"}
    assert render(inv, ["client-1"], "{{ 2 * 21 }}") == {"client-1": "42"}  # one expression: its text


def test_errors_name_the_hosts_and_the_reason():
    with pytest.raises(TemplateError) as err:
        render(plain_inventory(), ["server-1", "client-1", "client-2"], "{{ testbed_networks.experimnt }}")
    assert str(err.value) == "on server-1, client-1, client-2: object of type 'dict' has no attribute 'experimnt'"
    with pytest.raises(TemplateError, match=r"on client-1: 'nope' is undefined"):
        render(plain_inventory(), ["client-1"], "echo {{ nope }}")


def test_the_ansible_engine_gives_each_host_its_own_script_never_templated_again():
    import yaml

    text = playbook_text({"client-1": "echo {{ a }} 1", "client-2": "echo 2"}, {}, False, 0)
    [play] = yaml.safe_load(text.replace("!unsafe", ""))
    assert play["tasks"][0]["ansible.builtin.shell"]["cmd"] == "{{ __tb_scripts[inventory_hostname] }}"
    assert play["vars"]["__tb_scripts"] == {"client-1": "echo {{ a }} 1", "client-2": "echo 2"}
    assert text.count("!unsafe") == 2
    assert "vars" not in yaml.safe_load(playbook_text("echo 1", {}, False, 0).replace("!unsafe", ""))[0]


# ---- Check ---------------------------------------------------------------------------------------


def test_check_records_each_hosts_rendering_and_passes_a_plain_command_untouched():
    result = check()
    assert result.failures == []
    hashes = result.inputs["renderedHashes"]
    assert set(hashes) == {"client-1", "client-2"} and hashes["client-1"] == hashes["client-2"]  # same text on both
    plain = asyncio.run(controller().check("step", {}, {"inventory": INVENTORY, "on": "server", "create": "iperf3 -s"}))
    assert plain.failures == [] and plain.inputs == {"inventory": INVENTORY, "on": "server", "create": "iperf3 -s"}


def test_a_template_error_is_a_check_failure_naming_the_property_and_hosts():
    result = check(create="iperf3 -c {{ hostvars[groups['server'][0]].testbed_networks.experimnt }}")
    assert [(f.property, f.reason) for f in result.failures] == [
        ("create", "the template does not render on client-1, client-2: object of type 'dict' has no attribute 'experimnt'")
    ]
    result = check(delete="docker ps --format '{{.Names}}'")
    assert [f.property for f in result.failures] == ["delete"] and "{% raw %}" in result.failures[0].reason
    # not known yet (first preview): nothing to render, nothing recorded
    assert check(inventory=UNKNOWN).failures == [] and "renderedHashes" not in check(inventory=UNKNOWN).inputs
    assert "renderedHashes" not in check(vars={"duration": UNKNOWN}).inputs


def test_vars_and_readiness_rules():
    def failures(**changes):
        return [(f.property, f.reason) for f in check(**changes).failures]

    assert failures(vars=["x"]) == [
        ("vars", "must be an object of variables for the command's templates, e.g. {server: …, duration: 10} (got a list)")
    ]
    assert failures(readyPort=5201) == [
        ("readyPort", "only for a background command (`background: true`): a foreground command is done when it exits")
    ]
    assert failures(background=True, readyPort=5201, readyTimeout=5) == []
    assert failures(background=True, readyPort=0)[0][0] == "readyPort"
    assert failures(background=True, readyPort=True)[0][0] == "readyPort"
    assert failures(background=True, readyCommand=" ") == [
        ("readyCommand", "must be a non-empty shell command (it must exit 0 once the background command is ready) (got the string ` `)")
    ]
    assert failures(background=True, readyTimeout=5) == [("readyTimeout", "has no effect without `readyPort` or `readyCommand`")]
    assert failures(background=True, readyPort=5201, readyTimeout=0)[0][0] == "readyTimeout"
    assert failures(background=True, readyCommand="test -e {{ nope }}")[0] == (
        "readyCommand",
        "the template does not render on client-1, client-2: 'nope' is undefined",
    )
    assert failures(background=UNKNOWN, readyPort=5201) == []


def test_a_secret_variable_keeps_the_recorded_renderings_secret():
    assert isinstance(check(vars={"duration": Secret(10)}).inputs["renderedHashes"], Secret)
    assert not isinstance(check().inputs["renderedHashes"], Secret)


# ---- re-runs ---------------------------------------------------------------------------------


def diff_and_rerun(old_changes=None, new_changes=None, inventory=None):
    old = check(**(old_changes or {})).inputs
    new = check(**(new_changes or {}), **({"inventory": inventory} if inventory is not None else {})).inputs
    changes = controller().diff({}, old, new).detailed
    return changes, rerun_due(changes, old, new)


def test_a_change_of_a_variable_the_template_uses_reruns_it():
    changes, rerun = diff_and_rerun(new_changes={"vars": {"duration": 20}})
    assert rerun and "renderedHashes.client-1" in changes and "vars.duration" in changes
    moved = plain_inventory()
    moved["hosts"][0]["networks"][0]["address"] = "198.18.0.9"  # the server's experiment address changed
    changes, rerun = diff_and_rerun(inventory=moved)
    assert rerun and set(changes) >= {"renderedHashes.client-1", "renderedHashes.client-2"}


def test_what_renders_the_same_is_recorded_without_rerunning():
    _, rerun = diff_and_rerun(new_changes={"vars": {"duration": 10, "unused": "x"}})
    assert not rerun
    _, rerun = diff_and_rerun(
        new_changes={"create": "iperf3 -c {{hostvars[groups['server'][0]].testbed_networks.experiment}} -t {{duration}}"}
    )
    assert not rerun
    _, rerun = diff_and_rerun(new_changes={"create": "iperf3 -c 198.18.0.1 -t 10"})  # a plain command: its text decides
    assert rerun


def test_rendering_beside_a_warm_up_in_a_fresh_process_does_not_deadlock():
    """Rendering imports ansible-core plugins lazily; the provider's warm-ups import them from
    threads at the same time (seen: a first Check of a template hung for good against Play's)."""
    import subprocess
    import sys

    script = (
        "import threading\n"
        "from testbed_provider.remote import playbook, templating\n"
        "from tests.unit.test_command_templates import plain_inventory\n"
        "t = threading.Thread(target=playbook.warm_up); t.start()\n"
        "print(templating.render(plain_inventory(), ['client-1'], '{{ testbed_networks.experiment }}')['client-1'])\n"
        "t.join()\n"
    )
    from ..helpers import ROOT

    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "198.18.0.2"), done.stderr
