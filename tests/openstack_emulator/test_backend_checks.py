"""The chameleon backend's Check and preview against the OpenStack emulator: node types and
images judged from the cloud's own lists (close names suggested), node counts, the free hosts of
a lease's window from Blazar's allocations, refused credentials naming the key."""

from __future__ import annotations

import asyncio

import pytest

from testbed_provider.config import parse_config
from testbed_provider.testbeds import make_testbed
from testbed_provider.testbeds.base import MachineGroup, ReservationSpec

from .test_identity_and_images import emu  # noqa: F401 - the fixture
from .test_leases import at, blazar, hosts

pytestmark = pytest.mark.fast


def backend(emu, **keys):  # noqa: F811
    cred = emu.config.app_credentials[0]
    config, failures = parse_config(
        {
            "backend": "chameleon",
            "chameleonAuthUrl": f"{emu.url}/v3",
            "chameleonRegion": emu.config.region,
            "chameleonApplicationCredentialId": cred.id,
            "chameleonApplicationCredentialSecret": cred.secret,
            **keys,
        }
    )
    assert failures == []
    return make_testbed("chameleon", asyncio.Event(), config)


def spec(*groups):
    return ReservationSpec("exp", [MachineGroup(roles=r, count=c, options=o) for r, c, o in groups])


def test_node_types_images_and_counts_from_the_clouds_lists(emu):  # noqa: F811
    tb = backend(emu)
    failures = {
        f.property: f.reason
        for f in asyncio.run(
            tb.validate_remote(
                spec(
                    (["a"], 1, {"nodeType": "compute_skylak"}),
                    (["b"], 9, {"nodeType": "compute_cascadelake_r", "environment": "CC-Ubuntu2204"}),
                )
            )
        )
    }
    assert "did you mean `compute_skylake`" in failures["machines[0].nodeType"]
    assert "9 `compute_cascadelake_r` node(s) wanted, CHI@UC has 4" in failures["machines[1].count"]
    assert "no image `CC-Ubuntu2204`" in failures["machines[1].environment"] and "CC-Ubuntu22.04" in failures["machines[1].environment"]
    assert asyncio.run(tb.validate_remote(spec((["a"], 2, {})))) == []


def test_preview_counts_the_free_hosts_of_the_window(emu):  # noqa: F811
    tb = backend(emu)
    warn, line = asyncio.run(tb.forecast(spec((["a"], 2, {}))))
    assert not warn and "lease of 2× compute_skylake for 1:00:00 starting now on CHI@UC: 4 of 4 compute_skylake free" in line
    blazar(emu).lease.create("other", "now", at(emu, 120), hosts(3), [])
    warn, line = asyncio.run(tb.forecast(spec((["a"], 2, {}))))
    assert warn and "only 1 of 4 compute_skylake free" in line and "choose another `start`" in line


def test_refused_credentials_name_the_key(emu):  # noqa: F811
    tb = backend(emu, chameleonApplicationCredentialSecret="wrong")
    [failure] = asyncio.run(tb.check_access())
    assert failure.property == "chameleonApplicationCredentialSecret" and "refused the credentials" in failure.reason
    assert "wrong" not in failure.reason
    assert asyncio.run(backend(emu).check_access()) == []
