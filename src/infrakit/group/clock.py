"""Time as the controller sees it: a Protocol, the real clock, and a timeout that obeys it.

The supervisor never calls ``asyncio.sleep`` or ``time`` directly, so tests drive it with
:class:`infrakit.testing.FakeClock` and advance time exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """Monotonic time for decisions, wall time for reports, and sleeping."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def time(self) -> float:
        """Seconds since the epoch, for timestamps people read."""

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds``."""


class RealClock:
    """The clock of the running process."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def within(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """Await ``work``; past ``seconds`` on ``clock``, cancel it and raise ``TimeoutError``."""
    if type(clock) is RealClock:  # the loop's own timer: no extra tasks (drains every member)
        try:
            async with asyncio.timeout(seconds):
                return await work
        except TimeoutError:
            raise TimeoutError(f"no answer within {seconds:g}s") from None
    task = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    raise TimeoutError(f"no answer within {seconds:g}s")


async def wait_event(clock: Clock, event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True when the event was set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        timer.cancel()
    return event.is_set()
