"""Inventory formats and state decoding without hosts: every format read back by the real
`ansible-inventory`, and `--show-secrets` exports decoded (no stack needed, fast)."""

from __future__ import annotations

import json
import subprocess

import pytest

from testbed_provider.cli.inventory import to_ini
from testbed_provider.cli.stacks import SECRET_SIG, SIG, CliError, find_reservation, reveal

from ..helpers import ROOT

TRICKY = {
    "ansible_host": "198.19.0.1",
    "ansible_port": 22,
    "flag": True,
    "text": "two words",
    "looks_bool": "True",
    "looks_int": "22",
    "quote": 'it\'s "quoted"',
    "nested": {"a": [1, None, False], "b": "x y"},
}


def ansible_list(path) -> dict:
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(path.parent), "ANSIBLE_HOME": str(path.parent / "ah")},
    )
    return json.loads(out.stdout)


def test_ini_values_read_back_unchanged(tmp_path):
    data = {
        "all": {
            "hosts": {"h-1": TRICKY, "h-2": {"ansible_host": "198.19.0.2"}},
            "vars": {"ansible_ssh_common_args": "-F '/tmp/a b/ssh_config'", "k": "v"},
            "children": {"role_a": {"hosts": {"h-1": {}}}, "role_b": {"hosts": {"h-1": {}, "h-2": {}}}},
        }
    }
    (tmp_path / "inv.ini").write_text(to_ini(data, "a header\nof two lines"))
    (tmp_path / "inv.yml").write_text(json.dumps(data))
    ini, yml = ansible_list(tmp_path / "inv.ini"), ansible_list(tmp_path / "inv.yml")
    assert ini["_meta"]["hostvars"]["h-1"] == {**TRICKY, **data["all"]["vars"]}
    assert ini == yml


def secret(value) -> dict:
    return {SIG: SECRET_SIG, "plaintext": json.dumps(value)}


def test_exported_secrets_are_revealed_also_when_nested():
    outputs = {"inventory": secret({"ssh": {"privateKey": "k"}, "hosts": []}), "plain": [1, {"s": secret("x")}]}
    assert reveal(outputs) == {"inventory": {"ssh": {"privateKey": "k"}, "hosts": []}, "plain": [1, {"s": "x"}]}
    with pytest.raises(CliError, match="encrypted"):
        reveal({SIG: SECRET_SIG, "ciphertext": "v1:abc"})


def test_reservations_are_found_by_resource_name():
    def res(name, **extra):
        return {
            "urn": f"urn:pulumi:dev::p::testbed:index:Reservation::{name}",
            "type": "testbed:index:Reservation",
            "outputs": {"inventory": secret({"n": name})},
            **extra,
        }

    deployment = {
        "resources": [
            {"urn": "urn:pulumi:dev::p::pulumi:pulumi:Stack::p-dev", "type": "pulumi:pulumi:Stack"},
            res("a"),
            res("b"),
            res("old", delete=True),
        ]
    }
    assert find_reservation("dev", deployment, "b") == ("b", {"inventory": {"n": "b"}})
    with pytest.raises(CliError, match=r"2 reservations \(a, b\): pass --reservation NAME"):
        find_reservation("dev", deployment, None)
    with pytest.raises(CliError, match=r"no reservation `old` \(reservations: a, b\)"):
        find_reservation("dev", deployment, "old")
    assert find_reservation("dev", {"resources": deployment["resources"][:2]}, None)[0] == "a"
