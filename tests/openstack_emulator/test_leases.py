"""Blazar leases in the OpenStack emulator, driven by the unmodified python-blazarclient on the
openstacksdk session: host reservations by node type, the clock moving a lease through its
states, refusals as Blazar words them, extension, host allocations."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from blazarclient import client as blazar_client
from blazarclient.exception import BlazarClientException

from .test_identity_and_images import connect, emu  # noqa: F401 - the fixture

pytestmark = pytest.mark.fast
SKYLAKE = json.dumps(["=", "$node_type", "compute_skylake"])


def blazar(emu):  # noqa: F811
    emu.clock.set_speed(1e-6)  # time moves only when the test advances it
    conn = connect(emu)
    return blazar_client.Client(1, session=conn.session, service_type="reservation", interface="public", region_name=emu.config.region)


def hosts(n, props=SKYLAKE):
    return [{"resource_type": "physical:host", "min": n, "max": n, "resource_properties": props, "hypervisor_properties": ""}]


def at(emu, minutes):  # noqa: F811
    when = dt.datetime.fromtimestamp(emu.clock.now(), dt.timezone.utc) + dt.timedelta(minutes=minutes)
    return when.strftime("%Y-%m-%d %H:%M")


def test_a_lease_follows_the_clock_and_its_hosts_are_allocated(emu):  # noqa: F811
    b = blazar(emu)
    lease = b.lease.create("exp", at(emu, 10), at(emu, 70), hosts(2), [])
    assert lease["status"] == "PENDING" and lease["reservations"][0]["min"] == 2
    busy = [a for a in b.allocation.list("os-hosts") if a["reservations"]]
    assert len(busy) == 2 and all(a["reservations"][0]["lease_id"] == lease["id"] for a in busy)
    assert {h["node_type"] for h in b.host.list() if h["id"] in {a["resource_id"] for a in busy}} == {"compute_skylake"}
    emu.clock.advance(10 * 60)  # the start is that minute, floored: now within its first minute
    assert b.lease.get(lease["id"])["status"] == "STARTING"
    emu.clock.advance(emu.config.lease_start_seconds)
    assert b.lease.get(lease["id"])["status"] == "ACTIVE"
    emu.clock.advance(3600)
    assert b.lease.get(lease["id"])["status"] == "TERMINATED"
    b.lease.delete(lease["id"])
    with pytest.raises(BlazarClientException) as gone:
        b.lease.get(lease["id"])
    assert gone.value.kwargs["code"] == 404


def test_refusals_as_blazar_words_them(emu):  # noqa: F811
    b = blazar(emu)
    with pytest.raises(BlazarClientException) as past:
        b.lease.create("old", at(emu, -120), at(emu, -60), hosts(1), [])
    assert past.value.kwargs["code"] == 400 and "later than current date" in str(past.value)
    b.lease.create("all", "now", at(emu, 60), hosts(4), [])
    with pytest.raises(BlazarClientException) as full:
        b.lease.create("more", "now", at(emu, 60), hosts(1), [])
    assert full.value.kwargs["code"] == 409 and "Not enough hosts available" in str(full.value)
    assert b.lease.create("gpu", "now", at(emu, 60), hosts(1, json.dumps(["=", "$node_type", "gpu_rtx_6000"])), [])["status"] == "STARTING"


def test_extension_moves_the_end_unless_the_hosts_are_taken(emu):  # noqa: F811
    b = blazar(emu)
    first = b.lease.create("first", "now", at(emu, 60), hosts(4), [])
    longer = b.lease.update(first["id"], prolong_for="1h")
    assert longer["end_date"] > first["end_date"]
    b.lease.create("next", at(emu, 150), at(emu, 200), hosts(4), [])
    with pytest.raises(BlazarClientException) as taken:
        b.lease.update(first["id"], end_date=at(emu, 180))
    assert taken.value.kwargs["code"] == 409
