"""The request tag the provider appends to the command of its OAR jobs (pure, no API)."""

from testbed_provider.testbeds.g5k import naming, tagging
from testbed_provider.testbeds.g5k.jobs import mismatch

URN = "urn:pulumi:dev::proj::testbed:g5k:Job::exp"
BODY = {
    "name": "exp",
    "resources": "{cluster='parasilo'}/nodes=2,walltime=1:00:00",
    "command": "sleep infinity",
    "queue": "default",
    "types": ["deploy"],
}


def tagged(body: dict = BODY, urn: str = URN) -> str:
    return tagging.tag(body["command"], urn, body)


def test_round_trip():
    command = tagged()
    assert command.startswith("sleep infinity # pulumi-testbed ")
    mark = tagging.parse_tag(command)
    assert mark == (tagging.owner_of(URN), tagging.request_of(BODY))
    assert mark.owner == naming.job_name("exp", URN).rsplit("-", 1)[1]  # the job name's suffix
    assert tagging.strip_tag(command) == "sleep infinity"
    assert tagging.tag(command, URN, BODY) == command  # tagging twice changes nothing


def test_untagged_commands_are_left_alone():
    for command in ("sleep infinity", "", "echo '# pulumi-testbed'", "sleep 1 # pulumi-testbed zz.yy"):
        assert tagging.parse_tag(command) is None and tagging.strip_tag(command) == command
    assert tagging.parse_tag(None) is None
    assert tagging.tag("sleep infinity", "", BODY) == "sleep infinity"  # no URN, no tag
    assert tagging.tag("", URN, {**BODY, "command": ""}) == ""  # a comment alone would end the job at once


def test_a_command_that_has_its_own_comment():
    body = {**BODY, "command": "run.sh --x '#1' # my note"}
    command = tagged(body)
    assert tagging.strip_tag(command) == body["command"] and tagging.parse_tag(command).owner == tagging.owner_of(URN)


def test_owner_is_per_urn_and_request_ignores_name_and_start():
    other_stack = URN.replace(":dev:", ":prod:")
    assert tagging.parse_tag(tagged(urn=other_stack)).owner != tagging.parse_tag(tagged()).owner
    same = {**BODY, "name": "renamed", "reservation": "2030-01-01 10:00:00"}
    assert tagging.request_of(same) == tagging.request_of(BODY)
    two = {**BODY, "types": ["deploy", "destructive"]}
    assert tagging.request_of({**two, "types": ["destructive", "deploy"]}) == tagging.request_of(two)
    for change in (
        {"resources": "{cluster='parasilo'}/nodes=3,walltime=1:00:00"},
        {"queue": "production"},
        {"types": []},
        {"project": "p"},
        {"command": "sleep 60"},
    ):
        assert tagging.request_of({**BODY, **change}) != tagging.request_of(BODY), change


def test_mismatch_sees_a_changed_node_count_through_the_tag():
    job = {"walltime": 3600, "queue": "default", "types": ["deploy"], "command": tagged(), "state": "waiting"}
    assert mismatch(job, {**BODY, "command": tagged()}) is None
    more = {**BODY, "resources": "{cluster='parasilo'}/nodes=3,walltime=1:00:00"}
    assert "the request changed" in mismatch(job, {**more, "command": tagged(more)})
    longer = {**BODY, "resources": "{cluster='parasilo'}/nodes=2,walltime=2:00:00"}
    assert mismatch(job, {**longer, "command": tagged(longer)}) == "walltime 1:00:00, not 2:00:00"
    other = {**BODY, "command": "sleep 60"}
    assert mismatch(job, {**other, "command": tagged(other)}) == "command `sleep infinity`, not `sleep 60`"
