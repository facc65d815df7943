"""A shared clock grid for streaming work, so that many streams wake the process together instead of one by one.

Every wake-up of an otherwise idle process costs far more than the work it does: about 0.1–0.2 ms of kernel,
scheduler and event-loop time on a small VM, against a few microseconds to handle one upstream chunk. Streams
that sleep until the next multiple of the same period (on the loop's clock) wake in the same loop iteration, so
N streams cost one wake-up per period instead of one per chunk each.
"""

from __future__ import annotations

import asyncio


def next_tick(now: float, period: float) -> float:
    """The first multiple of ``period`` after ``now``."""
    return (now // period + 1) * period


async def sleep_until_tick(period: float, waiter: asyncio.Future[None] | None = None) -> None:
    """Sleep until the next multiple of ``period`` seconds on the running loop's clock (at once if ``period`` <= 0).

    ``waiter``, if given, is the future slept on: completing it (``wake``) ends the sleep early.
    """
    if period <= 0:
        await asyncio.sleep(0)
        return
    loop = asyncio.get_running_loop()
    waiter = waiter or loop.create_future()
    handle = loop.call_at(next_tick(loop.time(), period), wake, waiter)
    try:
        await waiter
    finally:
        handle.cancel()


def wake(waiter: asyncio.Future[None]) -> None:
    """End a :func:`sleep_until_tick` early (no-op if it has ended)."""
    if not waiter.done():
        waiter.set_result(None)
