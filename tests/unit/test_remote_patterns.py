"""Host patterns resolved by ansible-core in-process, on an in-memory inventory (no hosts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from testbed_provider.remote import PatternError, RemoteError, match_hosts
from testbed_provider.remote.inventory import InventoryError, parse
from testbed_provider.remote.materialize import ansible_inventory_data

NAMES = [
    ("server-1", ["server"]),
    ("web-1", ["web", "front"]),
    ("web-2", ["web"]),
    ("client-1", ["client"]),
    ("client-2", ["client", "front"]),
    ("db-1", ["db"]),
    ("spare-1", []),
]


def inventory() -> dict:
    hosts = [
        {"name": n, "address": f"198.19.0.{i}", "roles": r, "networks": [], "user": "root", "port": 22} for i, (n, r) in enumerate(NAMES, 1)
    ]
    groups: dict[str, list[str]] = {}
    for n, roles in NAMES:
        for role in roles:
            groups.setdefault(role, []).append(n)
    return {"hosts": hosts, "groups": groups, "ssh": {"user": "root", "port": 22, "knownHosts": ""}}


CASES = [
    ("all", ["server-1", "web-1", "web-2", "client-1", "client-2", "db-1", "spare-1"]),
    ("*", ["server-1", "web-1", "web-2", "client-1", "client-2", "db-1", "spare-1"]),
    ("server", ["server-1"]),
    ("server-1", ["server-1"]),
    ("client:!server", ["client-1", "client-2"]),
    ("server:client", ["server-1", "client-1", "client-2"]),
    ("client:server", ["server-1", "client-1", "client-2"]),  # inventory order, not pattern order
    ("server,client", ["server-1", "client-1", "client-2"]),
    ("web*", ["web-1", "web-2"]),
    ("web:&front", ["web-1"]),
    ("front:!web", ["client-2"]),
    ("!web", ["server-1", "client-1", "client-2", "db-1", "spare-1"]),
    ("&front", ["web-1", "client-2"]),
    ("~(web|db)-\\d", ["web-1", "web-2", "db-1"]),
    ("client[1]", ["client-2"]),
    ("client[0:1]", ["client-1", "client-2"]),
    ("ungrouped", ["spare-1"]),
    ("all:!ungrouped:!client-1", ["server-1", "web-1", "web-2", "client-2", "db-1"]),
    ("server:web*:!web-2", ["server-1", "web-1"]),
    ("server:nomatch*", ["server-1"]),  # a glob names nothing: Ansible ignores it, so do we
    ("  client  ", ["client-1", "client-2"]),
]


@pytest.mark.parametrize("pattern, expected", CASES)
def test_patterns_resolve_like_ansible(pattern, expected):
    assert match_hosts(inventory(), pattern) == expected


@pytest.mark.parametrize(
    "pattern, message",
    [
        (
            "nope",
            "unknown role or host `nope` (roles: client, db, front, server, web; "
            "hosts: server-1, web-1, web-2, client-1, client-2, db-1, spare-1)",
        ),
        ("client:!nope", "unknown role or host `nope`"),
        ("web:&typo", "unknown role or host `typo`"),
        ("client-9", "unknown role or host `client-9`"),
        ("localhost", "unknown role or host `localhost`"),  # Ansible's implicit localhost is the controller: never
        ("clients[0]", "unknown role or host `clients`"),
        ("server:&client", "`server:&client` matches no host"),
        ("nomatch*", "`nomatch*` matches no host"),
        ("client[5]", "No hosts matched the subscripted pattern"),
        ("~(", "Invalid host list pattern"),
        ("", "the host pattern is empty"),
        ("   ", "the host pattern is empty"),
    ],
)
def test_bad_patterns_raise_a_precise_pattern_error(pattern, message):
    with pytest.raises(PatternError) as err:
        match_hosts(inventory(), pattern)
    assert message in str(err.value)


def test_pattern_error_is_a_value_error():
    assert issubclass(PatternError, ValueError)


def test_long_name_lists_are_shortened():
    inv = {"hosts": [{"name": f"h-{i}", "address": f"10.0.{i // 250}.{i % 250 + 1}"} for i in range(40)], "groups": {}}
    with pytest.raises(PatternError, match=r"hosts: h-0, h-1, .*h-11, … \(40 in all\)"):
        match_hosts(inv, "x")


def test_groups_default_to_the_hosts_roles():
    inv = inventory()
    del inv["groups"]
    assert match_hosts(inv, "front") == ["web-1", "client-2"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda inv: inv.update(hosts="x"), "`hosts` must be a list"),
        (lambda inv: inv["hosts"][0].update(name="bad name"), "is not a valid host name"),
        (lambda inv: inv["hosts"][0].update(name="-oProxyCommand=x"), "is not a valid host name"),
        (lambda inv: inv["hosts"][1].update(name="server-1"), "listed twice"),
        (lambda inv: inv["hosts"][0].update(address="1.2.3.4 -oX"), "invalid address"),
        (lambda inv: inv["hosts"][0].update(port=0), "TCP port"),
        (lambda inv: inv["groups"].update(web=["ghost-1"]), "unknown host(s) ['ghost-1']"),
        (lambda inv: inv["groups"].update({"all": ["server-1"]}), "not a usable role name"),
    ],
)
def test_malformed_inventories_raise_inventory_error(mutate, message):
    inv = inventory()
    mutate(inv)
    with pytest.raises(InventoryError) as err:
        match_hosts(inv, "all")
    assert message in str(err.value)
    assert isinstance(err.value, RemoteError) and isinstance(err.value, ValueError) and not isinstance(err.value, PatternError)


def test_connection_data_is_required_only_to_connect():
    inv = inventory()
    assert match_hosts(inv, "db") == ["db-1"]  # no private key needed to resolve a pattern
    with pytest.raises(InventoryError, match="privateKey"):
        parse(inv)
    inv["ssh"]["privateKey"] = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    with pytest.raises(InventoryError, match="proxyCommand") as err:
        parse({**inv, "ssh": {**inv["ssh"], "proxyCommand": "nc %h %p\nHost *"}})
    assert "PRIVATE KEY" not in str(err.value)


def test_repeated_calls_are_cached_and_fast():
    inv = inventory()
    match_hosts(inv, "client:!server")  # loads ansible and the inventory once
    t0 = time.perf_counter()
    for _ in range(500):
        match_hosts(inv, "client:!server")
        match_hosts(inv, "web*")
    assert (time.perf_counter() - t0) / 1000 < 0.002  # per call, including the inventory check and hash


def test_importing_the_package_does_not_import_ansible():
    code = (
        "import sys; import testbed_provider.remote, testbed_provider.remote.runner; "
        "print(any(m == 'ansible' or m.startswith('ansible.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_same_selection_as_ansible_playbook_itself(tmp_path):
    """Cross-check against `ansible-playbook --list-hosts` on the inventory file the Ansible engine
    uses (as sets: Ansible lists a play's hosts in pattern order, we in inventory order)."""
    inv = inventory()
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps(ansible_inventory_data(parse(inv, connection=False))))
    book = tmp_path / "list.yml"
    book.write_text(
        "\n".join(f"- name: p{k}\n  hosts: {json.dumps(p.strip())}\n  gather_facts: false\n  tasks: []" for k, (p, _) in enumerate(CASES))
        + "\n"
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_INVENTORY_ENABLED": "yaml",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "ansible", "playbook", "-i", str(path), "--list-hosts", str(book)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    listed: dict[int, set[str]] = {}
    current = None
    for line in out.stdout.splitlines():
        m = re.match(r"\s*play #\d+ \(.*\): p(\d+)", line)
        if m:
            current = int(m.group(1))
            listed[current] = set()
        elif current is not None and line.startswith("      ") and not line.strip().startswith("pattern:"):
            listed[current].add(line.strip())
    for k, (pattern, _) in enumerate(CASES):
        assert listed[k] == set(match_hosts(inv, pattern)), pattern
