"""Build hooks (everything else is in pyproject.toml): the package carries `schema.json`.

The schema's committed, generated copy lives at the repository root (the SDK and the docs are
generated from it there), and the provider serves it from GetSchema. An editable install reads
it from the root (`testbed_provider/schema.py`); a wheel has no repository around it, so the
build copies it into the package (and an sdist carries that copy, for wheels built from it).
"""

from __future__ import annotations

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_SCHEMA = os.path.join(os.path.dirname(HERE), "schema.json")  # the repository's
PACKAGED = os.path.join("testbed_provider", "schema.json")  # inside the package, as package data


def schema_source() -> str:
    """The schema to package: the repository's, or the copy an sdist carries."""
    for path in (ROOT_SCHEMA, os.path.join(HERE, PACKAGED)):
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"schema.json is neither at {ROOT_SCHEMA} nor at {os.path.join(HERE, PACKAGED)}")


class BuildPyWithSchema(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the repository's own
            target = os.path.join(self.build_lib, PACKAGED)
            self.mkpath(os.path.dirname(target))
            shutil.copyfile(schema_source(), target)


class SdistWithSchema(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        shutil.copyfile(schema_source(), os.path.join(base_dir, PACKAGED))


setup(cmdclass={"build_py": BuildPyWithSchema, "sdist": SdistWithSchema})
