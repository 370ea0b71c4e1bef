"""Reservation outputs `addresses` (network → role → addresses, host order) and `hostAddresses`
(host → network → address), with the network SSH uses as `_ssh`: the same from both backends'
states (their hosts are what outputs_from_state reads)."""

from testbed_provider.resources.reservation import outputs_from_state

SSH = {"user": "root", "port": 22, "knownHosts": "", "privateKey": "KEY", "publicKey": "ssh-ed25519 AAAA"}


def net(id_: str, address: str, interface: str = "eth1") -> dict:
    return {"id": id_, "address": address, "interface": interface, "cidr": address.rsplit(".", 1)[0] + ".0/24"}


def test_local_state_gives_addresses_per_network_and_role_in_host_order():
    state = {
        "backend": "local",
        "id": "tb-1",
        "ssh": SSH,
        "hosts": [
            {
                "name": "server-1",
                "address": "198.19.0.1",
                "roles": ["server", "monitor"],
                "networks": [net("experiment", "198.18.0.1"), net("storage", "198.18.1.1", "eth2")],
            },
            {"name": "client-1", "address": "198.19.0.2", "roles": ["client"], "networks": [net("experiment", "198.18.0.2")]},
            {"name": "client-2", "address": "198.19.0.3", "roles": ["client"], "networks": [net("experiment", "198.18.0.3")]},
            {"name": "idle-1", "address": "198.19.0.4", "roles": ["idle"], "networks": []},
        ],
    }
    out = outputs_from_state(state, {})
    assert out["addresses"] == {
        "_ssh": {"server": ["198.19.0.1"], "monitor": ["198.19.0.1"], "client": ["198.19.0.2", "198.19.0.3"], "idle": ["198.19.0.4"]},
        "experiment": {"server": ["198.18.0.1"], "monitor": ["198.18.0.1"], "client": ["198.18.0.2", "198.18.0.3"]},
        "storage": {"server": ["198.18.1.1"], "monitor": ["198.18.1.1"]},
    }
    assert out["addresses"]["experiment"]["server"][0] == "198.18.0.1"
    assert out["hostAddresses"] == {
        "server-1": {"_ssh": "198.19.0.1", "experiment": "198.18.0.1", "storage": "198.18.1.1"},
        "client-1": {"_ssh": "198.19.0.2", "experiment": "198.18.0.2"},
        "client-2": {"_ssh": "198.19.0.3", "experiment": "198.18.0.3"},
        "idle-1": {"_ssh": "198.19.0.4"},
    }
    # the same addresses the inventory gives each host as `testbed_networks`
    for h in out["inventory"]["hosts"]:
        assert {n["id"]: n["address"] for n in h["networks"]} == {k: v for k, v in out["hostAddresses"][h["name"]].items() if k != "_ssh"}


def test_g5k_state_gives_the_same_shape():
    """A g5k host: the production IP as `address`, its KaVLAN address per network, site and fqdn beside."""
    state = {
        "backend": "g5k",
        "id": "g5k-1",
        "ssh": SSH,
        "g5k": {},
        "hosts": [
            {
                "name": "taurus-3",
                "address": "172.16.48.3",
                "fqdn": "taurus-3.lyon.grid5000.fr",
                "roles": ["server"],
                "networks": [net("experiment", "10.24.0.3")],
                "site": "lyon",
                "group": 0,
            },
            {
                "name": "grisou-7",
                "address": "172.16.72.7",
                "fqdn": "grisou-7.nancy.grid5000.fr",
                "roles": ["client"],
                "networks": [net("experiment", "10.24.0.9")],
                "site": "nancy",
                "group": 1,
            },
        ],
    }
    out = outputs_from_state(state, {})
    assert out["addresses"] == {
        "_ssh": {"server": ["172.16.48.3"], "client": ["172.16.72.7"]},
        "experiment": {"server": ["10.24.0.3"], "client": ["10.24.0.9"]},
    }
    assert out["hostAddresses"]["grisou-7"] == {"_ssh": "172.16.72.7", "experiment": "10.24.0.9"}


def test_a_state_from_before_the_addresses_gets_them_by_an_update_that_touches_nothing():
    import asyncio

    from testbed_provider.config import ProviderConfig
    from testbed_provider.protocol.engine_log import EngineLog
    from testbed_provider.resources.base import ProviderContext
    from testbed_provider.resources.diff import Kind
    from testbed_provider.resources.reservation import Reservation

    inputs = {"name": "r", "machines": [{"roles": ["server"], "count": 1}], "networks": [{"id": "exp"}]}
    state = {
        "backend": "local",
        "id": "tb-r-000000",
        "networks": [{"id": "exp", "cidr": "198.18.0.0/24", "roles": None}],
        "hosts": [
            {
                "name": "server-1",
                "address": "198.19.0.1",
                "roles": ["server"],
                "group": 0,
                "networks": [{"id": "exp", "address": "198.18.0.1", "interface": "eth1", "cidr": "198.18.0.0/24"}],
            }
        ],
        "ssh": {"user": "root", "port": 22, "knownHosts": "", "privateKey": "KEY", "publicKey": "PUB"},
    }
    current = outputs_from_state(state, inputs)
    old = {k: v for k, v in current.items() if k not in ("addresses", "hostAddresses")}
    controller = Reservation(ProviderContext(config=ProviderConfig(), log=EngineLog(None)))
    assert controller.diff(current, inputs, inputs).detailed == {}
    assert controller.diff(old, inputs, inputs).detailed == {"addresses": Kind.UPDATE}
    updated = asyncio.run(controller.update("tb-r-000000", "urn", old, inputs, inputs, preview=False))
    assert updated["addresses"] == {"_ssh": {"server": ["198.19.0.1"]}, "exp": {"server": ["198.18.0.1"]}}
