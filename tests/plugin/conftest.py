import pytest

from .engine import PluginUnderTest


@pytest.fixture
def plugin():
    p = PluginUnderTest()
    yield p
    p.stop()
