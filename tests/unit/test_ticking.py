"""A long step says it is still running, and stops saying it once done."""

import asyncio

from testbed_provider.common.ticking import ticking


def test_lines_while_running_and_none_after():
    lines: list[str] = []

    async def say(line: str) -> None:
        lines.append(line)

    async def main() -> int:
        async with ticking(say, lambda t: f"still at it ({t >= 0})", every=0.01):
            while len(lines) < 2:  # a condition, not a duration
                await asyncio.sleep(0.005)
        done = len(lines)
        for _ in range(5):
            await asyncio.sleep(0.02)
        return done

    done = asyncio.run(main())
    assert len(lines) == done and lines[0] == "still at it (True)"
