"""examples/iperf3 end to end: a real iperf3 run between two local hosts."""

import pytest

from ..helpers import IS_ROOT
from .stack import Stack

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the local testbed needs root")


def test_iperf3_measures_and_only_the_client_reruns(tmp_path):
    stack = Stack(tmp_path, example="iperf3", config={"duration": "1"})
    try:
        stack.up()
        outputs = stack.outputs()
        assert isinstance(outputs["bandwidth_gbps"], (int, float)) and outputs["bandwidth_gbps"] > 0
        assert '"sum_received"' in outputs["iperf3_report"]
        assert stack.preview_ops() == {}, "a second up must be a no-op"

        stack.run("config", "set", "duration", "2")
        assert stack.preview_ops() == {"iperf3-client": "update"}
        stack.up()
        report = stack.outputs()["iperf3_report"]
        assert '"duration":\t2' in report or '"duration": 2' in report or '"duration":2' in report
    finally:
        stack.destroy()
    assert stack.resources() == []
