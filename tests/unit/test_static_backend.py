"""The static backend's settings and Check rules: every failure names its key or property."""

from testbed_provider.config import parse_config
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec, VmSize
from testbed_provider.testbeds.static.settings import parse_settings
from testbed_provider.testbeds.static.testbed import StaticTestbed, place


def props(failures):
    return {f.property: f.reason for f in failures}


def test_settings_from_yaml_and_their_failures(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    hosts = "{server: [10.0.0.5, {address: 10.0.0.6, user: ubuntu, port: 2222, alias: big, networks: [{id: exp, address: 192.168.1.6}]}]}"
    settings, failures = parse_settings({"staticHosts": hosts, "staticSshKeyFile": str(key)})
    assert failures == [] and settings is not None
    [a, b] = settings.hosts["server"]
    assert (a.address, a.port, a.user) == ("10.0.0.5", 22, None)
    assert (b.user, b.port, b.alias, b.networks[0].address) == ("ubuntu", 2222, "big", "192.168.1.6")
    _, failures = parse_settings({"staticHosts": "{server: [{address: 'a b', port: 0, colour: red}]}", "staticSshKeyFile": "/no/key"})
    reasons = " | ".join(f.reason for f in failures)
    assert "unknown field(s) colour" in reasons and "`a b` is not an address" in reasons
    assert props(failures)["staticSshKeyFile"] == "`/no/key` does not exist"
    _, failures = parse_settings({"staticHosts": "[not, a, map]", "staticSshKeyFile": str(key)})
    assert "expected an object" in props(failures)["staticHosts"]
    config, failures = parse_config({"backend": "static", "staticSshKeyFile": str(key)})
    assert failures == [] and config.static is not None and config.static.hosts == {}  # the groups may name theirs


def test_check_counts_kinds_options_and_networks(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    settings, _ = parse_settings(
        {
            "staticHosts": "{server: [{address: s1, networks: [{id: exp, address: 10.1.0.1}]}], client: [c1, c2]}",
            "staticSshKeyFile": str(key),
        }
    )
    testbed = StaticTestbed(settings)
    spec = ReservationSpec(
        "r",
        [
            MachineGroup(["server"], 2, options={"site": "lyon"}),
            MachineGroup(["client"], 1, kind="vm", vm=VmSize(1, 512)),
        ],
    )
    failures = props(testbed.validate(spec))
    assert "`testbed:staticHosts` lists 1" in failures["machines[0].count"]
    assert "machines[0].site" in failures and "machines[1].kind" in failures
    ok = ReservationSpec("r", [MachineGroup(["server"], 1), MachineGroup(["client"], 2)], [NetworkSpec("exp")])
    reasons = [f.reason for f in testbed.validate(ok) if f.property == "networks[0]"]
    assert [r.split(" joins")[0] for r in reasons] == ["client-1 (c1)", "client-2 (c2)"]
    assert [p.name for p in place(ok, settings)] == ["server-1", "client-1", "client-2"]
    assert testbed.validate(ReservationSpec("r", [MachineGroup(["client"], 2)])) == []
    twice = ReservationSpec("r", [MachineGroup(["client"], 2, options={"hosts": [{"address": "c1"}, {"address": "c1", "port": 22}]})])
    assert "c1:22 is listed for two machines" in props(testbed.validate(twice))["machines"]
    assert StaticTestbed(None).validate(spec) == []  # an unusable configuration says why itself


def test_a_group_may_name_its_own_hosts(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    settings, _ = parse_settings({"staticHosts": "{server: [s1]}", "staticSshKeyFile": str(key)})
    testbed = StaticTestbed(settings)
    own = [{"address": "10.0.0.7", "alias": "db"}, {"address": "10.0.0.8", "port": 2222}]
    spec = ReservationSpec("r", [MachineGroup(["server"], 1), MachineGroup(["client"], 2, options={"hosts": own})])
    assert testbed.validate(spec) == []
    assert [(p.name, p.host.address, p.host.port) for p in place(spec, settings)] == [
        ("server-1", "s1", 22),
        ("db", "10.0.0.7", 22),
        ("client-1", "10.0.0.8", 2222),
    ]
    wrong = ReservationSpec("r", [MachineGroup(["client"], 3, options={"hosts": [*own, {"address": "a b"}]})])
    failures = props(testbed.validate(wrong))
    assert "machines[0].hosts[2].address" in failures and "machines[0].count" not in failures  # 3 listed, 3 wanted
    short = ReservationSpec("r", [MachineGroup(["client"], 3, options={"hosts": own})])
    assert props(testbed.validate(short))["machines[0].count"] == "3, but `hosts` lists 2 machine(s)"
