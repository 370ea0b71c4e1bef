"""The controller-side workspace (no hosts): file contents, modes, caching, playbook text."""

from __future__ import annotations

import json
import os
import stat

import pytest
import pytest_asyncio
import yaml

from testbed_provider.remote import materialize
from testbed_provider.remote.ansible_engine import playbook_text, to_result

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5\n-----END OPENSSH PRIVATE KEY-----\n"


def inventory(key: str = KEY, proxy: str | None = "ip netns exec tb-x-sw nc %h %p", roles=("server", "client")) -> dict:
    hosts = [
        {"name": "server-1", "address": "198.19.0.1", "roles": [roles[0]], "user": "root", "port": 22},
        {"name": "client-1", "address": "198.19.0.2", "roles": [roles[1]], "user": "admin", "port": 2222},
    ]
    ssh = {
        "user": "root",
        "port": 22,
        "knownHosts": "server-1,198.19.0.1 ssh-ed25519 AAAA\n",
        "publicKey": "ssh-ed25519 BBBB",
        "privateKey": key,
    }
    if proxy:
        ssh["proxyCommand"] = proxy
    return {"hosts": hosts, "groups": {roles[0]: ["server-1"], roles[1]: ["client-1"]}, "ssh": ssh}


@pytest_asyncio.fixture
async def closed():
    """Whatever a test materializes is removed afterwards."""
    yield
    await materialize.close()


@pytest.mark.asyncio
async def test_files_and_modes(closed):
    ws = await materialize.workspace(inventory())
    root = os.path.dirname(ws.dir)
    for d in (root, ws.dir, ws.control_dir):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for f in (ws.key, ws.known_hosts, ws.ssh_config, ws.ansible_inventory, ws.ansible_cfg):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    with open(ws.key) as f:
        assert f.read() == KEY
    config = open(ws.ssh_config).read()
    assert "Host server-1\n  HostName 198.19.0.1\n  User root\n  Port 22\n" in config
    assert "Host client-1\n  HostName 198.19.0.2\n  User admin\n  Port 2222\n" in config
    for line in (
        "IdentitiesOnly yes",
        "StrictHostKeyChecking yes",
        "BatchMode yes",
        "ControlMaster auto",
        "ControlPersist 60s",
        f'ControlPath "{ws.control_dir}/%C"',
        f'IdentityFile "{ws.key}"',
        f'UserKnownHostsFile "{ws.known_hosts}"',
        "ProxyCommand ip netns exec tb-x-sw nc %h %p",
    ):
        assert f"  {line}\n" in config
    for text in (config, open(ws.ansible_inventory).read()):
        assert "c2VjcmV0LWtleS1ib2R5" not in text
    assert ws.ssh_args()[:2] == ["-F", ws.ssh_config] and f"ControlPath={ws.control_dir}/%C" in ws.ssh_args()


@pytest.mark.asyncio
async def test_no_proxy_command_when_the_testbed_is_reached_directly(closed):
    ws = await materialize.workspace(inventory(proxy=None))
    assert "ProxyCommand" not in open(ws.ssh_config).read()


@pytest.mark.asyncio
async def test_ansible_inventory_has_roles_as_groups_and_connection_vars(closed):
    ws = await materialize.workspace(inventory())
    data = json.load(open(ws.ansible_inventory))
    assert list(data["all"]["hosts"]) == ["server-1", "client-1"]
    assert data["all"]["hosts"]["client-1"] == {
        "ansible_host": "198.19.0.2",
        "ansible_user": "admin",
        "ansible_port": 2222,
        "ansible_python_interpreter": "/usr/bin/python3",
        "testbed_networks": {},
        "testbed_roles": ["client"],
    }
    assert data["all"]["children"] == {"server": {"hosts": {"server-1": {}}}, "client": {"hosts": {"client-1": {}}}}


@pytest.mark.asyncio
async def test_ansible_inventory_carries_network_addresses_and_group_vars(closed):
    inv = inventory()
    inv["hosts"][0]["networks"] = [{"id": "exp", "address": "10.9.0.1", "interface": "eth1"}]
    inv["hosts"][0]["vars"] = {"iperf_port": 5201, "testbed_roles": "overridden by the reservation"}
    ws = await materialize.workspace(inv)
    server = json.load(open(ws.ansible_inventory))["all"]["hosts"]["server-1"]
    assert server["testbed_networks"] == {"exp": "10.9.0.1"} and server["iperf_port"] == 5201
    assert server["testbed_roles"] == ["server"]
    assert ws.dir != (await materialize.workspace(inventory())).dir  # other variables: another inventory file


@pytest.mark.asyncio
async def test_workspaces_are_cached_per_inventory_and_masters_shared_per_reservation(closed):
    a = await materialize.workspace(inventory())
    assert await materialize.workspace(inventory()) is a
    regrouped = await materialize.workspace(inventory(roles=("db", "web")))
    assert regrouped.dir != a.dir and regrouped.control_dir == a.control_dir  # same reservation: same sockets
    other_key = await materialize.workspace(inventory(key=KEY.replace("c2Vj", "b3Ro")))
    assert other_key.control_dir != a.control_dir  # another reservation never shares connections
    os.unlink(a.key)  # removed behind our back: rewritten on next use
    again = await materialize.workspace(inventory())
    assert os.path.exists(again.key)


@pytest.mark.asyncio
async def test_close_removes_everything(closed):
    ws = await materialize.workspace(inventory())
    await materialize.close(inventory())
    assert not os.path.exists(ws.dir) and not os.path.exists(ws.control_dir)
    await materialize.close()
    assert not os.path.exists(os.path.dirname(ws.dir))


def _load_unsafe(text: str):
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: ("UNSAFE", loader.construct_scalar(node)))
    return yaml.load(text, Loader=Loader)


def test_playbook_marks_every_user_string_unsafe_and_survives_any_character():
    script = 'echo \'{{ lookup("pipe", "id") }}\' "quote" \\ é ✓ 😀\n\ttab: #not-a-comment'
    env = {"X": "{{ bad }}", "Y": "multi\nline"}
    play = _load_unsafe(playbook_text(script, env, True, 2.5))[0]
    assert play["hosts"] == "all" and play["gather_facts"] is False
    task = play["tasks"][0]
    assert task["ansible.builtin.shell"] == {"cmd": ("UNSAFE", script)}
    assert task["environment"] == {"X": ("UNSAFE", "{{ bad }}"), "Y": ("UNSAFE", "multi\nline")}
    assert task["become"] is True and task["timeout"] == 3
    bare = _load_unsafe(playbook_text("true", {}, False, 0))[0]["tasks"][0]
    assert "environment" not in bare and "become" not in bare and "timeout" not in bare


def test_ansible_events_map_to_the_ssh_engines_conventions():
    ok = to_result({"tb": "ok", "host": "h", "t": 10.5, "result": {"rc": 0, "stdout": "a\n", "stderr": ""}}, 10.0, 0)
    assert (ok.status, ok.rc, ok.stdout, ok.duration_s, ok.started_at[-1]) == ("ok", 0, "a", 0.5, "Z")
    failed = to_result(
        {"tb": "failed", "host": "h", "t": 1, "result": {"rc": 3, "stdout": "", "stderr": "boom", "msg": "non-zero return code"}}, None, 0
    )
    assert (failed.status, failed.rc, failed.stderr) == ("failed", 3, "boom")
    down = to_result(
        {"tb": "unreachable", "host": "h", "t": 1, "result": {"msg": "Failed to connect to the host via ssh: Connection refused"}}, None, 0
    )
    assert (down.status, down.rc, down.stderr) == ("unreachable", -1, "Connection refused")
    slow = to_result({"tb": "failed", "host": "h", "t": 1, "result": {"msg": "Timed out", "timedout": {"period": 2}}}, None, 2)
    assert (slow.status, slow.rc) == ("timeout", -1) and "timed out after 2 s" in slow.stderr
    module = to_result(
        {"tb": "failed", "host": "h", "t": 1, "result": {"msg": "MODULE FAILURE", "rc": 127, "module_stderr": "python3: not found"}},
        None,
        0,
    )
    assert (module.status, module.rc, module.stderr) == ("failed", 127, "MODULE FAILURE\npython3: not found")
