"""The typed definitions are the single source of truth: schema.json and docs/ are generated from
them (`make schema`), the SDK from schema.json, and the versions agree."""

import filecmp
import json
import subprocess
import tomllib
from pathlib import Path

import testbed_provider

from .helpers import ROOT


def schema():
    return json.loads((ROOT / "schema.json").read_text())


def test_committed_schema_and_docs_are_generated_from_the_definitions():
    from testbed_provider.typed.package import generated_files

    files = generated_files()
    stale = [rel for rel, text in files.items() if not (ROOT / rel).is_file() or (ROOT / rel).read_text() != text]
    extra = [f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in files]
    assert not stale and not extra, f"stale or hand-edited: {stale + extra} — edit the definitions, then run `make schema`"


def test_versions_agree():
    version = schema()["version"]
    assert testbed_provider.__version__ == version
    sdk = tomllib.loads((ROOT / "sdk/python/pyproject.toml").read_text())
    assert sdk["project"]["version"] == version
    plugin = json.loads((ROOT / "sdk/python/pulumi_testbed/pulumi-plugin.json").read_text())
    assert plugin == {"resource": True, "name": "testbed", "version": version}


def test_pulumi_sdk_matches_the_engine_pin():
    from importlib.metadata import version

    assert version("pulumi") == (ROOT / "engine/PULUMI_VERSION").read_text().strip()
    engine = subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=True).stdout.strip()
    assert engine == "v" + version("pulumi")


def _differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__", "pulumi_testbed.egg-info"])
    out = [f"only in committed: {n}" for n in cmp.left_only] + [f"only in fresh: {n}" for n in cmp.right_only]
    out += [f"differs: {n}" for n in cmp.diff_files]
    for sub in cmp.common_dirs:
        out += _differences(a / sub, b / sub)
    return out


def test_committed_sdk_is_a_fresh_generation(tmp_path):
    subprocess.run(
        ["pulumi", "package", "gen-sdk", str(ROOT / "schema.json"), "--language", "python", "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    differences = _differences(ROOT / "sdk/python", tmp_path / "python")
    assert not differences, f"sdk/python is stale or edited by hand — run `make sdk`: {differences}"
