"""`testbed compare`'s table: one line per stack, long or multi-line outputs cut short."""

from testbed_provider.cli import stacks
from testbed_provider.cli.compare import SECRET, Row, masked, render


def test_table_csv_and_json():
    rows = [Row("local", "local", 2, 0.5, {"bw": 11.7, "report": "{\n  big\n}" + "x" * 80}), Row("g5k", "g5k", 3, None, {"bw": None})]
    table = render(rows, ["bw", "report"], "table").splitlines()
    assert len(table) == 3 and table[0].split() == ["stack", "backend", "hosts", "ready_s", "bw", "report"]
    assert table[1].split()[:5] == ["local", "local", "2", "0.5", "11.7"] and table[1].endswith("...")
    assert table[2].split() == ["g5k", "g5k", "3", "-", "-", "-"]
    assert render(rows, ["bw"], "csv").splitlines()[1] == "local,local,2,0.5,11.7"
    assert '"ready_s": null' in render(rows, ["bw"], "json")


def test_secrets_are_masked_however_deep():
    secret = {stacks.SIG: stacks.SECRET_SIG, "plaintext": '"hunter2"'}
    assert masked({"a": [1, {"b": secret}], "c": secret}) == {"a": [1, {"b": SECRET}], "c": SECRET}
