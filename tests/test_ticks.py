"""The shared tick grid: many sleepers wake at the same multiple of the period."""

from __future__ import annotations

import asyncio

from kefu.ticks import next_tick, sleep_until_tick, wake


def test_ticks_next_tick_is_the_following_multiple() -> None:
    assert next_tick(0.0, 0.03) == 0.03
    assert next_tick(1.0, 0.25) == 1.25  # exactly on a tick: the next one
    assert abs(next_tick(10.01, 0.03) - 10.02) < 1e-9
    assert next_tick(10.01, 0.03) > 10.01


async def test_ticks_sleepers_started_apart_wake_together() -> None:
    loop = asyncio.get_running_loop()
    woke: list[float] = []

    async def sleeper(delay: float) -> None:
        await asyncio.sleep(delay)
        await sleep_until_tick(1.0)
        woke.append(loop.time())

    start = loop.time()
    # Both must start sleeping within one period: if this one ends soon, begin after its tick.
    if next_tick(start, 1.0) - start < 0.3:
        await asyncio.sleep(next_tick(start, 1.0) - start + 0.01)
    await asyncio.gather(sleeper(0.0), sleeper(0.02))
    assert len(woke) == 2
    assert abs(woke[0] - woke[1]) < 0.015  # the same tick, not 20 ms apart


async def test_ticks_wake_ends_the_sleep_early() -> None:
    waiter = asyncio.get_running_loop().create_future()
    sleeping = asyncio.create_task(sleep_until_tick(3600.0, waiter))
    await asyncio.sleep(0.01)
    assert not sleeping.done()
    wake(waiter)
    await asyncio.wait_for(sleeping, 5)
    wake(waiter)  # a second wake is harmless


async def test_ticks_zero_period_does_not_sleep() -> None:
    await asyncio.wait_for(sleep_until_tick(0), 1)
