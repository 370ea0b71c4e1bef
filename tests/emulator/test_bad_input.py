"""Bad input gets the real API's error (text/plain, 4xx), never a traceback or a 500 of ours."""

from __future__ import annotations

import pytest
import requests

CASES = [
    ("POST", "/sites/rennes/jobs", "not json", "application/json", 400),
    ("POST", "/sites/rennes/jobs", "[1, 2]", "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": 5}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "types": [1]}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "types": "deploy"}', "application/json", 201),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": "{cluster=\'paravance\'"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": "nodes=two"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": "nodes=1,walltime=abc"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": "nodes=1,colour=red"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": "{cluster=}/nodes=1"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": "/fish=1"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "resources": 12}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "walltime": "forever"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", '{"command": "x", "properties": "cluster = = 1"}', "application/json", 400),
    ("POST", "/sites/rennes/jobs", "command=sleep+1&resources=nodes%3D1", "application/x-www-form-urlencoded", 201),
    ("POST", "/sites/nowhere/jobs", '{"command": "x"}', "application/json", 404),
    ("GET", "/sites/rennes/jobs/abc", None, None, 404),
    ("GET", "/sites/rennes/jobs?limit=x", None, None, 400),
    ("DELETE", "/sites/rennes/jobs/999999", None, None, 404),
    ("GET", "/sites/rennes/jobs/999999/walltime", None, None, 404),
    ("POST", "/sites/rennes/deployments", "[]", "application/json", 400),
    ("POST", "/sites/rennes/deployments", '{"nodes": [1], "environment": "debian12-min"}', "application/json", 400),
    ("POST", "/sites/rennes/deployments", '{"nodes": ["a"], "environment": 3}', "application/json", 400),
    (
        "POST",
        "/sites/rennes/deployments",
        '{"nodes": ["paravance-1.rennes.grid5000.fr"], "environment": "debian12-min", "vlan": "x"}',
        "application/json",
        400,
    ),
    ("GET", "/sites/rennes/deployments?offset=-", None, None, 400),
    ("POST", "/sites/rennes/vlans/4/nodes", '["paravance-1.rennes.grid5000.fr"]', "application/json", 403),
    ("POST", "/sites/rennes/vlans/4/nodes", "garbage", "application/json", 400),
    ("POST", "/sites/rennes/vlans/DEFAULT/nodes", "[5]", "application/json", 200),
    ("POST", "/sites/rennes/vlans/abc/nodes", "[]", "application/json", 404),
    ("PUT", "/sites/rennes/vlans/4/dhcpd", '{"action": "start"}', "text/plain", 415),
    ("PUT", "/sites/rennes/vlans", "{}", "application/json", 405),
    ("GET", "/sites/rennes/clusters/paravance/nodes/gros-1", None, None, 404),
    ("GET", "/sites/rennes/environments/nope", None, None, 404),
    ("GET", "/nothing/here", None, None, 404),
]


@pytest.mark.parametrize("method,path,data,ctype,code", CASES)
def test_bad_input_gets_the_apis_error(emu, method, path, data, ctype, code):
    headers = {"Content-Type": ctype} if ctype else {}
    r = requests.request(method, emu.url + path, data=data, headers=headers, auth=("alice", "x"), timeout=10)
    assert r.status_code == code, r.text
    if code >= 400:
        assert r.headers["Content-Type"].startswith("text/plain")
        assert "Traceback" not in r.text and "\n" not in r.text.strip() or r.text.startswith("Request to ")
