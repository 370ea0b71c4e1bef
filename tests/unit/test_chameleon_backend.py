"""The chameleon backend's settings, plan and Check rules (pure: no cloud is contacted)."""

import datetime as dt
import json

import pytest

from testbed_provider.config import parse_config
from testbed_provider.protocol.redact import REDACTOR
from testbed_provider.testbeds.base import MachineGroup, NetworkSpec, ReservationSpec
from testbed_provider.testbeds.chameleon import plan as planning
from testbed_provider.testbeds.chameleon.settings import cloud_region, parse_settings, read_openrc
from testbed_provider.testbeds.chameleon.testbed import _busy_hosts, _reservation_ids, _suggest

pytestmark = pytest.mark.fast
APP = {
    "chameleonAuthUrl": "http://127.0.0.1:9/v3",
    "chameleonApplicationCredentialId": "ac1",
    "chameleonApplicationCredentialSecret": "s3cr3t-ac",
}


def props(failures):
    return {f.property: f.reason for f in failures}


def test_keys_make_an_application_credential_cloud_and_hide_the_secret():
    settings, failures = parse_settings({**APP, "chameleonRegion": "CHI@UC"})
    assert failures == [] and settings is not None
    region = cloud_region(settings)
    assert region.config["auth_type"] == "v3applicationcredential" and region.region_name == "CHI@UC"
    assert "s3cr3t-ac" not in repr(settings)
    assert "s3cr3t-ac" not in REDACTOR.scrub("token s3cr3t-ac refused")
    assert (settings.ssh_user, settings.image, settings.node_type, settings.network) == (
        "cc",
        "CC-Ubuntu22.04",
        "compute_skylake",
        "sharednet1",
    )


def test_openrc_is_read_not_run_and_its_prompt_needs_the_password_key(tmp_path):
    rc = tmp_path / "CHI-1-openrc.sh"
    rc.write_text(
        "#!/usr/bin/env bash\nexport OS_AUTH_URL=http://127.0.0.1:9/v3\nexport OS_USERNAME=alice\n"
        'export OS_PROJECT_NAME="CHI-123456"\nexport OS_REGION_NAME="CHI@TACC"\n'
        'echo "Please enter your Chameleon password: "\nread -sr OS_PASSWORD_INPUT\nexport OS_PASSWORD=$OS_PASSWORD_INPUT\n'
        "touch /tmp/openrc-was-run\n"
    )
    options, prompted = read_openrc(str(rc))
    assert options["username"] == "alice" and options["project_name"] == "CHI-123456" and prompted == ["OS_PASSWORD"]
    _, failures = parse_settings({"chameleonOpenrc": str(rc)})
    assert "asks for the password" in props(failures)["chameleonPassword"]
    settings, failures = parse_settings({"chameleonOpenrc": str(rc), "chameleonPassword": "pw-x"})
    assert failures == [] and settings is not None and settings.region == "CHI@TACC"


def test_clouds_yaml_names_its_cloud(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  chameleon:\n    auth_type: v3applicationcredential\n    region_name: CHI@UC\n    auth:\n"
        "      auth_url: http://127.0.0.1:9/v3\n      application_credential_id: a\n      application_credential_secret: zz-secret\n"
        "  other:\n    auth: {auth_url: http://127.0.0.1:8/v3}\n"
    )
    _, failures = parse_settings({"chameleonCloudsFile": str(clouds)})
    assert "set `testbed:chameleonCloud`" in props(failures)["chameleonCloud"]
    _, failures = parse_settings({"chameleonCloudsFile": str(clouds), "chameleonCloud": "nope"})
    assert "no cloud `nope`" in props(failures)["chameleonCloud"]
    settings, failures = parse_settings({"chameleonCloudsFile": str(clouds), "chameleonCloud": "chameleon"})
    assert failures == [] and settings is not None and settings.region == "CHI@UC"
    assert "zz-secret" not in REDACTOR.scrub("zz-secret")
    config, failures = parse_config({"backend": "chameleon", "chameleonCloudsFile": str(clouds), "chameleonCloud": "chameleon"})
    assert failures == [] and config.chameleon is not None


def spec(*groups, networks=()):
    return ReservationSpec("exp", [MachineGroup(roles=r, count=c, options=o) for r, c, o in groups], list(networks))


def test_plan_leases_one_host_reservation_per_group():
    settings, _ = parse_settings(APP)
    s = spec((["server"], 1, {"nodeType": "gpu_rtx_6000"}), (["client"], 2, {"walltime": "2:00:00"}))
    plan = planning.make_plan(s, settings)
    assert [m.name for m in plan.machines] == ["server-1", "client-1", "client-2"]
    assert plan.walltime == 7200 and plan.start is None
    [a, b] = plan.reservations(s)
    assert (a["min"], a["max"], json.loads(a["resource_properties"])) == (1, 1, ["=", "$node_type", "gpu_rtx_6000"])
    assert json.loads(b["resource_properties"]) == ["=", "$node_type", "compute_skylake"]
    lease = {"id": "L", "reservations": [{**b, "id": "rb"}, {**a, "id": "ra"}]}  # Blazar's order need not be ours
    assert _reservation_ids(lease, plan.reservations(s)) == {0: "ra", 1: "rb"}
    assert planning.same_request(lease, plan.reservations(s)) and not planning.same_request(lease, plan.reservations(s)[:1])
    assert planning.lease_name(s, "urn:pulumi:dev::p::testbed:index:Reservation::exp").startswith("exp-")


def test_check_rules_name_the_property():
    now = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    failures = props(
        planning.validate(
            spec(
                (["a"], 1, {"cluster": "x", "walltime": "1:00:00", "start": "2026-12-01 10:00"}),
                (["b"], 1, {"walltime": "3:00:00", "start": "2026-13-01 10:00"}),
                networks=[NetworkSpec("exp", None, "10.0.0.0/24")],
            ),
            now,
        )
    )
    assert "not a chameleon option" in failures["machines[0].cluster"]
    assert "in the past" in failures["machines[0].start"] and "omit `start`" in failures["machines[0].start"]
    assert "not a UTC date" in failures["machines[1].start"]
    assert "a lease has one walltime" in failures["machines[1].walltime"]
    assert "omit `cidr`" in failures["networks[0].cidr"]
    assert planning.validate(spec((["a"], 1, {"start": "2026-12-03 10:00"})), now) == []


def test_suggestions_and_window_allocations():
    assert "did you mean `compute_skylake`" in _suggest("compute_skylak", ["compute_skylake", "gpu_rtx_6000"])
    assert "known: a, b" in _suggest("zzz", ["a", "b"])
    allocs = [
        {"resource_id": "h1", "reservations": [{"start_date": "2026-12-02T10:00:00.000000", "end_date": "2026-12-02T12:00:00.000000"}]},
        {"resource_id": "h2", "reservations": [{"start_date": "2026-12-02T13:00:00.000000", "end_date": "2026-12-02T14:00:00.000000"}]},
    ]
    start = dt.datetime(2026, 12, 2, 11, 0, tzinfo=dt.timezone.utc)
    assert _busy_hosts(allocs, start, start + dt.timedelta(hours=1)) == {"h1"}
    assert _busy_hosts(allocs, start, start + dt.timedelta(hours=3)) == {"h1", "h2"}


def test_creating_calls_all_finish_before_a_failure_is_raised():
    import asyncio

    from testbed_provider.testbeds.chameleon.testbed import _every

    made = []

    async def make(name, fail=False):
        await asyncio.sleep(0.01 if fail else 0.05)  # the failure comes first
        if fail:
            raise RuntimeError("quota")
        made.append(name)

    with pytest.raises(RuntimeError, match="quota"):
        asyncio.run(_every([make("a"), make("b", fail=True), make("c")]))
    assert sorted(made) == ["a", "c"]  # recorded, so the partial state frees them
