"""OAR jobs through python-grid5000: submit, list, filters, lifecycle, scheduling, reservations,
refusals with the real texts and codes."""

from __future__ import annotations

import json

import pytest
import requests
from grid5000.exceptions import Grid5000CreateError, Grid5000DeleteError, Grid5000GetError

from .conftest import client_as, paris_in, wait_state

ENOSLIB_BODY = {
    "name": "pulumi-test",
    "types": ["deploy", "origin=enoslib_g5k"],
    "resources": "{cluster='paravance'}/nodes=2+{type='kavlan'}/vlan=1,walltime=01:00:00",
    "command": "sleep 31536000",
    "queue": "default",
}


def test_enoslib_submission_runs_with_nodes_and_a_vlan(gk, emu):
    site = gk.sites["rennes"]
    job = site.jobs.create(dict(ENOSLIB_BODY))
    assert job.state in ("waiting", "launching") and job.walltime == 3600 and job.user == "alice"
    wait_state(job, "running", emu, step=5)
    assert len(job.assigned_nodes) == 2 and all(n.startswith("paravance-") for n in job.assigned_nodes)
    assert job.resources_by_type["vlans"] == ["4"]
    assert job.started_at > 0 and job.types == ENOSLIB_BODY["types"]


def test_submit_answers_201_with_location_and_json(emu):
    r = requests.post(f"{emu.url}/sites/lyon/jobs", json={"command": "sleep 1"}, auth=("alice", "x"), timeout=10)
    assert r.status_code == 201 and r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Location"].endswith(f"/stable/sites/lyon/jobs/{r.json()['uid']}")
    assert "stopped_at" not in r.json()  # null keys are omitted


def test_list_is_newest_first_with_filters_and_paging(gk, emu):
    site = gk.sites["lyon"]
    uids = [site.jobs.create({"name": f"j{i}", "command": "sleep 9", "resources": "nodes=1"}).uid for i in range(4)]
    client_as(emu, "bob", "y").sites["lyon"].jobs.create({"name": "j0", "command": "sleep 9"})
    listed = [j.uid for j in site.jobs.list(user="alice")]
    assert listed == sorted(uids, reverse=True)
    assert [j.uid for j in site.jobs.list(user="alice", limit=2, offset=1)] == sorted(uids, reverse=True)[1:3]
    by_name = site.jobs.list(name="j0", user="alice")
    assert [j.uid for j in by_name] == [uids[0]]
    assert not hasattr(by_name[0], "assigned_nodes")  # only with resources=yes
    with_res = site.jobs.list(name="j0", user="alice", resources="yes")
    assert isinstance(with_res[0].assigned_nodes, list)
    site.jobs.delete(uids[1])
    wait_state(site.jobs[uids[1]], "error")
    alive = {j.uid for j in site.jobs.list(state="waiting,launching,running", user="alice")}
    assert alive == set(uids) - {uids[1]}
    assert [j.uid for j in site.jobs.list(state="error")] == [uids[1]]


def test_delete_is_202_async_then_error_and_a_second_delete_is_400(gk, emu):
    site = gk.sites["rennes"]
    job = site.jobs.create({"command": "sleep 3600", "resources": "nodes=1"})
    wait_state(job, "running", emu, step=5)
    r = requests.delete(f"{emu.url}/sites/rennes/jobs/{job.uid}", auth=("alice", "x"), timeout=10)
    assert r.status_code == 202 and r.text == "" and "X-Oar-Info" in r.headers
    job.refresh()
    assert job.state in ("running", "finishing")
    wait_state(job, "error", emu, step=5)
    assert job.stopped_at >= job.started_at
    with pytest.raises(Grid5000DeleteError) as err:
        site.jobs.delete(job.uid)
    assert err.value.response_code == 400
    assert "This job was already killed" in err.value.error_message
    assert err.value.error_message.startswith("Request to ")


def test_delete_of_another_users_job_is_403_and_unknown_is_404(gk, emu):
    job = client_as(emu, "bob", "y").sites["rennes"].jobs.create({"command": "sleep 60"})
    with pytest.raises(Grid5000DeleteError) as err:
        gk.sites["rennes"].jobs.delete(job.uid)
    assert err.value.response_code == 403
    with pytest.raises(Grid5000GetError) as err:
        gk.sites["rennes"].jobs[424242]
    assert err.value.response_code == 404 and "Couldn't find OAR::Job with 'job_id'=424242" in err.value.error_message


def test_a_job_waits_while_its_nodes_are_busy_and_starts_when_they_are_freed(gk, emu):
    site = gk.sites["rennes"]
    first = site.jobs.create({"command": "sleep 1", "resources": "{cluster='roazhon'}/nodes=8,walltime=2:00:00"})
    wait_state(first, "running", emu, step=5)
    second = site.jobs.create({"command": "sleep 1", "resources": "{cluster='roazhon'}/nodes=3,walltime=1:00:00"})
    second.refresh()
    assert second.state == "waiting"
    assert second.scheduled_at == first.started_at + 7200  # predicted: when the first one ends
    assert len(second.assigned_nodes) == 3  # predicted nodes
    # another cluster is not blocked (FIFO only among jobs that compete)
    other = site.jobs.create({"command": "sleep 1", "resources": "{cluster='parasilo'}/nodes=1"})
    wait_state(other, "running", emu, step=5)
    first.delete()
    wait_state(second, "running", emu, step=5)
    assert second.started_at >= first.started_at


def test_walltime_expiry_ends_the_job_with_the_accelerated_clock(start_emulator):
    from g5k_emulator.testing import grid5000_client

    emu = start_emulator()  # real speed until the job runs: at 3600x its 30 min would pass between two slow polls
    site = grid5000_client(emu).sites["nancy"]
    job = site.jobs.create({"command": "sleep 31536000", "resources": "nodes=1,walltime=0:30:00"})
    wait_state(job, "running", emu, step=5)
    emu.control("POST", "clock", {"speed": 3600})
    wait_state(job, "error", timeout=30)  # 30 min of walltime pass in about half a second
    assert job.stopped_at - job.started_at >= 1800
    assert any(e["type"] == "WALLTIME" for e in job.events)
    with pytest.raises(Grid5000DeleteError) as err:
        job.delete()
    assert "This job was already killed" in err.value.error_message


def test_advance_reservation_is_validated_waits_with_its_nodes_then_runs(gk, emu):
    site = gk.sites["lyon"]
    start = paris_in(emu, 7200)
    job = site.jobs.create({"reservation": start, "resources": "{cluster='taurus'}/nodes=2,walltime=1:00:00", "command": "sleep 1"})
    assert job.state == "waiting"
    assert len(job.assigned_nodes) == 2
    assert abs(job.scheduled_at - (emu.now() + 7200)) < 60
    emu.advance(7200)
    wait_state(job, "running", emu, step=5)
    assert job.started_at == job.scheduled_at


def test_reservation_on_busy_nodes_is_refused_with_could_run_at(gk, emu):
    site = gk.sites["lyon"]
    busy = site.jobs.create({"command": "sleep 1", "resources": "{cluster='orion'}/nodes=12,walltime=3:00:00"})
    wait_state(busy, "running", emu, step=5)
    with pytest.raises(Grid5000CreateError) as err:
        site.jobs.create(
            {
                "reservation": paris_in(emu, 3600),
                "command": "sleep 1",
                "name": "resa",
                "resources": "{cluster='orion'}/nodes=1,walltime=1:00:00",
            }
        )
    assert err.value.response_code == 400
    message = err.value.error_message
    assert message.startswith("Request to https://") and "failed with status 400: " in message
    from g5k_emulator.jobs import paris

    expected = paris(busy.started_at + 3 * 3600)
    assert (
        f"Reservation not valid --> KO (This reservation could run at {expected})"
        in json.loads(message.split("failed with status 400: ", 1)[1])["message"]
    )
    refused = site.jobs.list(name="resa")
    assert [j.state for j in refused] == ["error"]  # the refused reservation leaves an error job


def test_reservation_too_old_and_bad_syntax(gk, emu):
    site = gk.sites["lyon"]
    with pytest.raises(Grid5000CreateError) as err:
        site.jobs.create({"reservation": paris_in(emu, -7200), "command": "x", "resources": "nodes=1,walltime=1:00:00"})
    assert err.value.response_code == 400 and "Reservation not valid --> KO (Reservation too old)" in err.value.error_message
    with pytest.raises(Grid5000CreateError) as err:
        site.jobs.create({"reservation": "tomorrow", "command": "x"})
    assert err.value.response_code == 400 and "Syntax error in reservation start date" in err.value.error_message
    with pytest.raises(Grid5000CreateError) as err:
        site.jobs.create({"reservation": 12, "command": "x"})
    assert "`reservation` should be a String." in err.value.error_message


def test_refusals_carry_the_real_codes_and_texts(gk):
    site = gk.sites["rennes"]
    cases = [
        ({"resources": "nodes=1"}, 400, "you must give a :command to execute on launch"),
        ({"command": "x", "resources": "nodes=1,walltime=200:00:00"}, 400, "Walltime too big for this job"),
        ({"command": "x", "resources": "nodes=500"}, 500, "There are not enough resources for your request"),
        ({"command": "x", "resources": "{cluster='nope'}/nodes=1"}, 500, "There are not enough resources for your request"),
        ({"command": "x", "resources": "{nosuchproperty='1'}/nodes=1"}, 500, "There are not enough resources"),
        ({"command": "x", "queue": "nosuchqueue"}, 500, "# Error: queue 'nosuchqueue' does not exist"),
        ({"command": "x", "queue": "besteffort", "reservation": "2030-01-01 10:00:00"}, 400, "[ADMISSION RULE] Error"),
        ({"command": "x", "resources": "{cluster='pyxis'}/nodes=1"}, 500, "not enough resources"),  # exotic needs -t exotic
    ]
    for body, code, text in cases:
        with pytest.raises(Grid5000CreateError) as err:
            site.jobs.create(body)
        assert err.value.response_code == code, body
        assert text in err.value.error_message, (body, err.value.error_message)
    exotic = gk.sites["lyon"].jobs.create({"command": "x", "types": ["exotic"], "resources": "{cluster='pyxis'}/nodes=1"})
    assert exotic.state in ("waiting", "launching")


def test_resource_syntax_named_nodes_groups_and_subnets(gk, emu):
    site = gk.sites["rennes"]
    named = site.jobs.create(
        {
            "command": "x",
            "resources": "{network_address in ('parasilo-5.rennes.grid5000.fr')}/nodes=1+{cluster='paravance'}/nodes=2"
            "+{type='kavlan-local'}/vlan=1+slash_22=1,walltime=0:45",
        }
    )
    wait_state(named, "running", emu, step=5)
    assert named.assigned_nodes[0] == "parasilo-5.rennes.grid5000.fr" and len(named.assigned_nodes) == 3
    assert named.walltime == 2700
    assert named.resources_by_type["vlans"] == ["1"] and len(named.resources_by_type["subnets"]) == 1
    one_cluster = site.jobs.create({"command": "x", "resources": "/cluster=1/nodes=4", "walltime": "0:10"})
    one_cluster.refresh()
    clusters = {n.split("-")[0] for n in one_cluster.assigned_nodes}
    assert len(clusters) == 1 and one_cluster.walltime == 600
    glob = site.jobs.create({"command": "x", "resources": "{type='kavlan-global'}/vlan=1"})
    glob.refresh()
    assert glob.resources_by_type["vlans"] == ["16"]  # rennes' own global vlan


def test_walltime_change(gk, emu):
    site = gk.sites["nancy"]
    job = site.jobs.create({"command": "x", "resources": "nodes=1,walltime=1:00:00"})
    wait_state(job, "running", emu, step=5)
    assert job.walltime_change.get().walltime == "1:00:00"
    job.walltime_change.create({"walltime": "+1:30:00"})
    job.refresh()
    assert job.walltime == 9000


def test_properties_field_filters_every_node_group(gk, emu):
    site = gk.sites["rennes"]
    job = site.jobs.create({"command": "x", "properties": "cluster = 'parasilo' and memnode > 1000", "resources": "nodes=2"})
    assert {n.split("-")[0] for n in job.assigned_nodes} == {"parasilo"}
    assert job.properties.startswith("(cluster = 'parasilo'") and "maintenance = 'NO'" in job.properties
    with pytest.raises(Grid5000CreateError) as err:
        site.jobs.create({"command": "x", "properties": "cluster = 'parasilo'", "resources": "nodes=17"})
    assert err.value.response_code == 500 and "There are not enough resources" in err.value.error_message
    with pytest.raises(Grid5000CreateError) as err:
        site.jobs.create({"command": "x", "properties": "cluster = = 'x'"})
    assert err.value.response_code == 400


def test_queues_select_their_clusters(gk, emu):
    site = gk.sites["nancy"]
    prod = site.jobs.create({"command": "x", "queue": "production", "resources": "{cluster='grappe'}/nodes=2"})
    assert prod.queue == "production" and {n.split("-")[0] for n in prod.assigned_nodes} == {"grappe"}
    with pytest.raises(Grid5000CreateError) as err:  # grappe is not in the default queue
        site.jobs.create({"command": "x", "resources": "{cluster='grappe'}/nodes=1"})
    assert err.value.response_code == 500
    besteffort = site.jobs.create({"command": "x", "types": ["besteffort"], "resources": "nodes=1"})
    assert besteffort.queue == "besteffort"
    assert [j.uid for j in site.jobs.list(queue="production")] == [prod.uid]


def test_besteffort_jobs_give_way_to_normal_jobs(gk, emu):
    site = gk.sites["rennes"]
    be = wait_state(
        site.jobs.create({"command": "x", "types": ["besteffort"], "resources": "{cluster='roazhon'}/nodes=8"}), "running", emu, step=5
    )
    assert {s["soft"] for s in site.clusters["roazhon"].status.list().nodes.values()} == {"busy_besteffort"}
    other_be = site.jobs.create({"command": "x", "types": ["besteffort"], "resources": "{cluster='roazhon'}/nodes=1"})
    other_be.refresh()
    assert other_be.state == "waiting"  # besteffort jobs do not preempt each other
    normal = site.jobs.create({"command": "x", "resources": "{cluster='roazhon'}/nodes=2"})
    wait_state(be, "error", emu, step=5)
    assert any(e["type"] == "BESTEFFORT_KILL" for e in be.events)
    wait_state(normal, "running", emu, step=5)
