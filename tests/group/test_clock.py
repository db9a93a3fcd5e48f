"""The real clock, as the controller uses it in production: ``within`` (drain and probe
timeouts) and ``wait_event`` (the loop's wait for a wake-up or the next poll).

The fake clock drives every other group test; these check the other branch of ``within``,
the one a running plugin takes. No assertion here is about how long anything took.
"""

from __future__ import annotations

import asyncio

import pytest

from infrakit.group import clock

REAL = clock.RealClock()


class Work:
    """An awaitable that records whether it started and whether it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def forever(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_work_that_finishes_returns_its_value() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert await clock.within(REAL, 30, answer()) == 42


async def test_work_that_fails_raises_its_own_error() -> None:
    async def broken() -> None:
        raise ValueError("the plugin said no")

    with pytest.raises(ValueError, match="the plugin said no"):
        await clock.within(REAL, 30, broken())


async def test_work_past_its_bound_is_cancelled_and_raises_timeout() -> None:
    work = Work()
    with pytest.raises(TimeoutError, match=r"^no answer within 0\.05s$"):
        await clock.within(REAL, 0.05, work.forever())
    assert work.started.is_set() and work.cancelled


async def test_cancelling_the_caller_cancels_the_work_and_is_not_a_timeout() -> None:
    work = Work()
    caller = asyncio.create_task(clock.within(REAL, 30, work.forever()))
    await work.started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert work.cancelled


async def test_wait_event_returns_true_once_the_event_is_set() -> None:
    event = asyncio.Event()
    waiter = asyncio.create_task(clock.wait_event(REAL, event, 30))
    await asyncio.sleep(0)
    assert not waiter.done()
    event.set()
    assert await waiter is True


async def test_wait_event_returns_false_when_the_time_passes_first() -> None:
    assert await clock.wait_event(REAL, asyncio.Event(), 0.01) is False


async def test_the_real_clock_sleeps_and_reads_the_process_clocks() -> None:
    first = REAL.monotonic()
    await REAL.sleep(0)
    assert REAL.monotonic() >= first
    assert REAL.time() > 1_500_000_000  # seconds since the epoch, not a monotonic count
