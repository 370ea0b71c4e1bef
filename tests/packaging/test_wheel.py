"""The provider as a user installs it: a wheel built from the checkout, installed in a fresh
virtualenv (dependencies from PyPI, nothing from the checkout), whose plugin serves the schema.

An editable install reads schema.json at the repository root; a wheel has no repository around
it, so this is the only test that would notice a wheel shipped without its schema (GetSchema
would fail) or without one of its modules.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2

from ..helpers import ROOT
from ..plugin.engine import PluginUnderTest

INSTALL_TIMEOUT = 900  # seconds: dependencies come from PyPI (pip's cache makes later runs faster)
# The provider's dependencies, pinned to what the project's own virtualenv runs (pulumi is
# pinned to the engine's version there): the wheel is tested with what the rest is tested with.
DEPENDENCIES = ("pulumi", "grpcio", "protobuf", "python-grid5000", "matplotlib", "graphviz", "grafana-foundation-sdk")


def pip(python: Path | str, *args: str, cwd: Path) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
    )
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def build_wheel(tmp: Path) -> Path:
    """`pip wheel` of a copy of the checkout's layout (provider/ beside schema.json), so the
    build writes nothing into the checkout (no build/, no egg-info)."""
    src = tmp / "src"
    junk = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc")

    def ignore(directory: str, names: list[str]) -> set[str]:  # build/ and dist/ of the provider itself, not of a JS library
        top = {"build", "dist"} if Path(directory) == ROOT / "provider" else set()
        return set(junk(directory, names)) | (top & set(names))

    shutil.copytree(ROOT / "provider", src / "provider", ignore=ignore)
    shutil.copy(ROOT / "schema.json", src / "schema.json")
    pip(sys.executable, "wheel", "--no-deps", "--wheel-dir", str(tmp / "dist"), str(src / "provider"), cwd=tmp)
    wheels = list((tmp / "dist").glob("testbed_provider-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    constraints = tmp / "constraints.txt"
    constraints.write_text("".join(f"{name}=={importlib.metadata.version(name)}\n" for name in DEPENDENCIES))
    pip(venv / "bin" / "python", "install", "--constraint", str(constraints), str(wheel), cwd=tmp)
    return venv


def test_a_wheel_in_a_fresh_venv_serves_the_schema(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path, wheel)
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import testbed_provider.schema as s; print(s.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    package = Path(where).parent
    assert package.is_relative_to(venv), f"imported from {where}, not from the wheel"
    assert (package / "schema.json").read_bytes() == (ROOT / "schema.json").read_bytes()
    # `testbed ui`'s page and its pinned JS library come with the wheel (no npm on the user's machine).
    for part in ("cli/ui/static/index.html", "cli/ui/static/app.js", "cli/ui/node_modules/cytoscape/dist/cytoscape.min.js"):
        assert (package / part).is_file(), part

    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": ""}
    plugin = PluginUnderTest(env=env, executable=venv / "bin" / "pulumi-resource-testbed")
    try:
        served = plugin.stub.GetSchema(provider_pb2.GetSchemaRequest(), timeout=60).schema
        assert served == (ROOT / "schema.json").read_text()
        info = plugin.stub.GetPluginInfo(empty_pb2.Empty(), timeout=60)
        assert info.version == importlib.metadata.version("testbed-provider")
    finally:
        plugin.stop()
