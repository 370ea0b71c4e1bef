import pytest

from ..helpers import IS_ROOT
from .stack import Stack


@pytest.fixture
def stack(tmp_path):
    if not IS_ROOT:
        pytest.skip("the local testbed needs root")
    s = Stack(tmp_path, example="nodes")
    yield s
    s.destroy()
