"""Drive the real `pulumi` CLI on a copy of an example project, fully offline.

Each test gets its own project copy, file backend and PULUMI_HOME, so stacks never share state
and the tests can run while a user's demo runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..helpers import ROOT


class Stack:
    def __init__(self, tmp: Path, example: str = "iperf3", stack: str = "local", config: dict[str, str] | None = None):
        source = ROOT / "examples" / example
        if not source.exists():
            source = Path(__file__).parent / "projects" / example
        self.dir = tmp / Path(example).name  # (`example` may also be a project's absolute path)
        shutil.copytree(source, self.dir, ignore=shutil.ignore_patterns(".pulumi-state", "__pycache__"))
        project = (self.dir / "Pulumi.yaml").read_text()
        # The copy lives elsewhere: point the plugin and virtualenv at this checkout.
        project = project.replace("../../provider/bin", str(ROOT / "provider" / "bin")).replace("../../.venv", str(ROOT / ".venv"))
        (self.dir / "Pulumi.yaml").write_text(project)
        (tmp / "state").mkdir(exist_ok=True)
        (tmp / "home").mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "PULUMI_BACKEND_URL": f"file://{tmp / 'state'}",
            "PULUMI_HOME": str(tmp / "home"),
            "PULUMI_CONFIG_PASSPHRASE": "",
        }
        self.state_dir = tmp / "state"
        self.run("stack", "init", stack)
        for key, value in (config or {}).items():
            self.run("config", "set", key, value)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["pulumi", *args, "--non-interactive"], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        return self.run("up", "--yes", "--skip-preview", *extra)

    def outputs(self, secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "output", "--json"] + (["--show-secrets"] if secrets else [])
        return json.loads(self.run(*args).stdout)

    def preview_ops(self) -> dict[str, str]:
        """Resource name → planned operation of a `pulumi preview` (same ones omitted)."""
        steps = json.loads(self.run("preview", "--json").stdout).get("steps", [])
        return {s["urn"].split("::")[-1]: s["op"] for s in steps if s["op"] != "same"}

    def resource(self, name: str) -> dict[str, Any]:
        return next(r for r in self.resources() if r["urn"].endswith("::" + name))

    def resources(self) -> list[dict[str, Any]]:
        deployment = json.loads(self.run("stack", "export").stdout)["deployment"]
        return deployment.get("resources") or []

    def reservation(self) -> dict[str, Any]:
        return next(r for r in self.resources() if r["type"] == "testbed:index:Reservation")

    def state_text(self) -> str:
        """Every byte the file backend wrote, as a test for plaintext secrets."""
        return "\n".join(p.read_text(errors="replace") for p in self.state_dir.rglob("*") if p.is_file())

    def destroy(self) -> None:
        self.run("destroy", "--yes", "--skip-preview", check=False)
