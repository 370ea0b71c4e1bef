"""customTimeouts and Cancel both stop a backend's wait, and the message says which one it was."""

import asyncio

import pytest

from testbed_provider.common.deadlines import deadline


@pytest.mark.asyncio
async def test_timeout_sets_the_stop_event_and_explains():
    async with deadline(asyncio.Event(), 0.05) as limit:
        await asyncio.wait_for(limit.stop.wait(), 2)
        assert limit.expired
        assert limit.explain("hosts not ready").startswith("timed out after 0.05 s (customTimeouts)")


@pytest.mark.asyncio
async def test_cancel_sets_the_stop_event_without_calling_it_a_timeout():
    cancelled = asyncio.Event()
    async with deadline(cancelled, 0) as limit:
        cancelled.set()
        await asyncio.wait_for(limit.stop.wait(), 2)
        assert not limit.expired and limit.explain("x") == "x"
