"""The preview's earliest-start forecast from a site status body (pure rules)."""

from __future__ import annotations

from testbed_provider.testbeds.g5k.forecast import Demand, Group, common_start, describe, earliest, eligible_clusters

NOW = 1_800_000_000
H = 3600


def node(*jobs: dict, hard: str = "alive") -> dict:
    return {"hard": hard, "soft": "busy" if jobs else "free", "reservations": list(jobs)}


def job(uid: int, start: int, walltime: int, state: str = "running", queue: str = "default", scheduled: bool = False) -> dict:
    key = "scheduled_at" if scheduled else "started_at"
    return {"uid": uid, "state": state, "queue": queue, "walltime": walltime, key: start}


def fqdn(cluster: str, i: int) -> str:
    return f"{cluster}-{i}.lyon.grid5000.fr"


def status(nodes: dict, vlans: dict | None = None) -> dict:
    return {"uid": NOW, "nodes": nodes, **({"vlans": vlans} if vlans is not None else {})}


def demand(*groups: Group, walltime: int = H, **kw) -> Demand:
    return Demand("lyon", tuple(groups), walltime, **kw)


def test_free_nodes_start_now():
    body = status({fqdn("taurus", 1): node(), fqdn("taurus", 2): node(job(7, NOW - H, 2 * H))})
    found = earliest(body, demand(Group(1, "taurus")))
    assert found.start == NOW and found.immediate
    assert "could start now on lyon" in describe(found, "job")


def test_busy_nodes_start_when_the_first_window_ends():
    body = status(
        {
            fqdn("taurus", 1): node(job(7, NOW - H, 3 * H)),
            fqdn("taurus", 2): node(job(8, NOW - H, 2 * H)),
            fqdn("taurus", 3): node(job(9, NOW + 30 * 60, H, state="waiting", scheduled=True)),
        }
    )
    one = earliest(body, demand(Group(1, "taurus")))
    assert one.start == NOW + H and "job(s) 8" in one.reason  # node 3 is free now but not for a whole hour
    short = earliest(body, demand(Group(1, "taurus"), walltime=20 * 60))
    assert short.start == NOW  # 20 minutes fit on node 3 before job 9
    two = earliest(body, demand(Group(2, "taurus")))
    assert two.start == NOW + 90 * 60  # node 2 from +1 h, node 3 after job 9 at +1 h 30 (node 1 only at +2 h)
    assert "in 1 h 30 min: held by job(s) 9 until then" in describe(two, "job")


def test_dead_nodes_and_too_large_requests_have_no_start():
    body = status({fqdn("taurus", 1): node(), fqdn("taurus", 2): node(hard="dead")})
    found = earliest(body, demand(Group(2, "taurus")))
    assert found.start is None and found.reason == "2 node(s) wanted on cluster taurus, 1 usable"
    assert "cannot be placed on lyon" in describe(found, "job")


def test_besteffort_jobs_do_not_block_a_normal_job_but_block_a_besteffort_one():
    body = status({fqdn("taurus", 1): node(job(5, NOW - 60, 10 * H, queue="besteffort"))})
    assert earliest(body, demand(Group(1, "taurus"))).start == NOW
    assert earliest(body, demand(Group(1, "taurus"), besteffort=True)).start == NOW - 60 + 10 * H


def test_named_hosts_and_cluster_groups_and_any_node():
    body = status(
        {fqdn("taurus", 1): node(job(1, NOW - 60, H)), fqdn("taurus", 2): node(), fqdn("orion", 1): node(), fqdn("gpu", 1): node()}
    )
    assert earliest(body, demand(Group(1, hosts=(fqdn("taurus", 1),)))).start == NOW - 60 + H
    mixed = demand(Group(1, "taurus"), Group(2), eligible_clusters=frozenset({"taurus", "orion"}))
    assert earliest(body, mixed).start == NOW - 60 + H  # taurus-2 for the cluster group; orion-1 + taurus-1 later
    assert earliest(body, demand(Group(1, "taurus"), Group(2))).start == NOW  # gpu-1 counts when eligibility is unknown


def test_advance_reservation_start_and_vlans():
    vlans = {
        "4": {"type": "kavlan", "hard": "alive", "reservations": [job(3, NOW - 60, 2 * H)]},
        "5": {"type": "kavlan", "hard": "alive", "reservations": []},
        "1": {"type": "kavlan-local", "hard": "alive", "reservations": []},
    }
    body = status({fqdn("taurus", 1): node()}, vlans)
    assert earliest(body, demand(Group(1), vlans=(("kavlan", 1),))).start == NOW
    assert earliest(body, demand(Group(1), vlans=(("kavlan", 2),))).start == NOW - 60 + 2 * H
    assert earliest(body, demand(Group(1), vlans=(("kavlan-global", 1),))).start is None
    later = earliest(body, demand(Group(1), not_before=NOW + 5 * H))
    assert later.start == NOW + 5 * H and not later.immediate


def test_caveats_for_properties_and_unplaced_jobs():
    body = status({fqdn("taurus", 1): node({"uid": 4, "state": "waiting", "queue": "default", "walltime": H})})
    found = earliest(body, demand(Group(1, "taurus", properties="eth_kavlan_count > 1")))
    assert found.start == NOW
    assert any("not evaluated" in c for c in found.caveats) and any("1 queued job(s)" in c for c in found.caveats)


def test_common_start_over_sites_moves_every_site_to_the_latest():
    lyon = status({fqdn("taurus", 1): node(job(1, NOW - 60, H))})
    nancy = {
        "uid": NOW,
        "nodes": {
            "gros-1.nancy.grid5000.fr": node(job(2, NOW + 90 * 60, H, state="waiting", scheduled=True)),
            "gros-2.nancy.grid5000.fr": node(job(3, NOW - 60, 3 * H)),
        },
    }
    demands = [Demand("lyon", (Group(1, "taurus"),), H), Demand("nancy", (Group(1, "gros"),), H)]
    start, per_site = common_start({"lyon": lyon, "nancy": nancy}, demands, lead=60)
    # lyon frees at +59 min; nancy's gros-1 is free only until +90 min (too short for an hour from
    # +59 min) so nancy waits for gros-1 at +2 h 30 or gros-2 at +2 h 59: +2 h 30.
    assert start == NOW + 150 * 60
    assert [f.start for f in per_site] == [NOW - 60 + H, NOW + 60]  # each site's own earliest (nancy: for 1 h at once)
    assert "job(s) 1" in per_site[0].reason and per_site[1].reason == ""


def test_eligible_clusters_follow_queue_and_exotic():
    clusters = {
        "taurus": {"queues": ["default", "admin"]},
        "prod": {"queues": ["production"]},
        "gpu": {"queues": ["default"], "exotic": True},
    }
    assert eligible_clusters(clusters, "default", []) == {"taurus"}
    assert eligible_clusters(clusters, "production", []) == {"prod"}
    assert eligible_clusters(clusters, "default", ["exotic"]) == {"taurus", "gpu"}
    assert eligible_clusters(clusters, "besteffort", []) == {"taurus", "prod"}
    assert eligible_clusters(None, "default", []) is None


def test_properties_evaluated_from_the_reference_filter_nodes_without_a_caveat():
    from testbed_provider.testbeds.g5k.forecast import kavlan_nics

    two = {
        "uid": "taurus-1",
        "network_adapters": [
            {"interface": "Ethernet", "kavlan": True},
            {"interface": "Ethernet", "kavlan": True},
            {"interface": "Ethernet", "kavlan": False, "management": True},
        ],
    }
    one = {"uid": "taurus-2", "network_adapters": [{"interface": "Ethernet", "kavlan": True}, {"interface": "InfiniBand", "kavlan": True}]}
    assert (kavlan_nics(two), kavlan_nics(one)) == (2, 1)
    body = status({fqdn("taurus", 1): node(job(1, NOW - 60, H)), fqdn("taurus", 2): node()})
    prop = "eth_kavlan_count > 1"
    evaluated = demand(Group(1, "taurus", properties=prop), evaluated=((prop, frozenset({fqdn("taurus", 1)})),))
    found = earliest(body, evaluated)
    assert found.start == NOW - 60 + H and found.caveats == []  # taurus-2 is free but has one kavlan NIC
    assert earliest(body, demand(Group(1, "taurus", properties=prop))).start == NOW  # not evaluated: any node
