"""Reference API, status, prefixes and authentication, through python-grid5000."""

from __future__ import annotations

import ipaddress

import pytest
import requests
from grid5000.exceptions import Grid5000AuthenticationError, Grid5000GetError

from .conftest import client_as, wait_state


def test_config_file_points_the_client_at_the_emulator(emu, gk):
    import yaml

    with open(emu.config_file) as f:
        config = yaml.safe_load(f)
    assert config == {"uri": emu.url, "username": "alice", "password": "x", "verify_ssl": False, "timeout": 30.0}
    assert gk._uri == emu.url
    assert emu.url.startswith("http://127.0.0.1:") and emu.url.endswith("/stable")


def test_sites_clusters_and_nodes_fit_100_nodes_over_three_sites(gk):
    sites = gk.sites.list()
    assert len(sites) >= 3
    total = 0
    for site in sites:
        count = sum(len(c.nodes.list()) for c in site.clusters.list(queues="all"))
        assert count >= 40, site.uid
        total += count
    assert total >= 100


def test_node_objects_have_the_fields_clients_read(gk):
    node = gk.sites["rennes"].clusters["paravance"].nodes["paravance-3"]
    assert node.uid == "paravance-3"
    assert node.architecture["nb_cores"] > 0 and node.main_memory["ram_size"] > 0
    adapters = {a["device"]: a for a in node.network_adapters}
    assert adapters["eth0"]["mounted"] and adapters["eth0"]["ip"].startswith("198.18.")
    assert not adapters["eth1"]["mounted"] and adapters["eth1"]["mountable"] and adapters["eth1"]["kavlan"]
    assert set(node.kavlan) == {"eth0", "eth1"}
    assert node.kavlan["eth0"]["kavlan-4"] != node.kavlan["eth1"]["kavlan-4"]
    # a cluster without a secondary interface
    gros = gk.sites["nancy"].clusters["gros"].nodes["gros-1"]
    assert [a["device"] for a in gros.network_adapters if a["interface"] == "Ethernet" and not a["management"]] == ["eth0"]


def test_site_objects_carry_kavlans_subnet_ipv6_and_dns(gk):
    site = gk.sites["rennes"]
    assert {"1", "2", "3", "4", "9", "default"} <= set(site.kavlans)
    for vlan, net in site.kavlans.items():
        network = ipaddress.ip_network(net["network"])
        assert ipaddress.ip_address(net["gateway"]) in network, vlan
        assert network.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
    assert ipaddress.ip_network(site.g5ksubnet["network"]).prefixlen <= 22
    assert isinstance(site.ipv6["site_index"], int)
    assert ipaddress.ip_address(site.servers["dns"].network_adapters["default"]["ip"])
    node_ip = site.clusters["paravance"].nodes["paravance-1"].network_adapters[0]["ip"]
    assert ipaddress.ip_address(node_ip) in ipaddress.ip_network(site.kavlans["default"]["network"])
    names = {e.name for e in site.environments.list()}
    assert {"debian11-min", "debian12-min", "debian12-nfs", "ubuntu2204-min"} <= names


def test_every_prefix_serves_the_same_api(emu):
    auth = ("alice", "x")
    bodies = [requests.get(f"{emu.root}{prefix}/sites/lyon", auth=auth, timeout=10) for prefix in ("/stable", "/3.0", "")]
    assert all(r.status_code == 200 and r.headers["Content-Type"].startswith("application/json") for r in bodies)
    assert len({r.json()["uid"] for r in bodies}) == 1
    assert bodies[1].json()["links"][0]["href"].startswith("/3.0/")


def test_unknown_paths_are_404_text_plain(gk, emu):
    with pytest.raises(Grid5000GetError) as err:
        gk.sites["nowhere"]
    assert err.value.response_code == 404
    assert "Cannot find resource /sites/nowhere" in err.value.error_message
    r = requests.get(f"{emu.url}/sites/rennes/clusters/nope", auth=("alice", "x"), timeout=10)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("text/plain")


def test_bad_or_missing_credentials_are_401_and_anonymous_writes_403(emu):
    with pytest.raises(Grid5000AuthenticationError):
        client_as(emu, "alice", "wrong").sites.list()
    assert requests.get(f"{emu.url}/sites", timeout=10).status_code == 401
    r = requests.post(f"{emu.url}/sites/rennes/jobs", json={"command": "sleep 1"}, headers={"X-Api-User-CN": "anonymous"}, timeout=10)
    assert r.status_code == 403 and r.text == "You are not authorized to access this resource"


def test_status_shows_busy_nodes_and_their_reservations(gk, emu):
    site = gk.sites["nancy"]
    job = site.jobs.create({"resources": "{cluster='gros'}/nodes=2", "command": "sleep 3600"})
    wait_state(job, "running", emu, step=5)
    status = site.clusters["gros"].status.list()
    busy = {fqdn: s for fqdn, s in status.nodes.items() if s["soft"] == "busy"}
    assert set(busy) == set(job.assigned_nodes)
    assert all(s["reservations"][0]["uid"] == job.uid for s in busy.values())
    assert status.nodes["gros-3.nancy.grid5000.fr"]["soft"] == "free"
    vlans = site.status.list().vlans
    assert vlans["4"]["type"] == "kavlan" and vlans["1"]["type"] == "kavlan-local"
