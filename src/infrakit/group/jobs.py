"""Running a group's jobs: a bounded number at once, in the background, no failure lost.

The supervisor creates, removes, adopts and probes members through :func:`bounded`, and
starts each batch of creations and removals with :func:`spawn`. A job is expected to
handle its own errors; one that raises anyway (a bug, a plugin answering nonsense) is
handed to ``on_error`` (which records it as an action) instead of ending the batch or
surfacing only as asyncio's "Task exception was never retrieved" when the task is
collected. :data:`UNLIMITED` stands in for the controller's semaphore when nothing bounds
creations and removals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

OnError = Callable[[Exception], None]
"""Told of every exception a job raised (it is not raised further)."""


async def bounded(jobs: Sequence[Callable[[], Awaitable[T]]], *, workers: int,
                  on_error: OnError) -> list[T]:
    """Run ``jobs`` with at most ``workers`` at once; return the results of those that did
    not raise (each exception goes to ``on_error``)."""
    queue, results = iter(jobs), list[T]()

    async def worker() -> None:
        for job in queue:
            try:
                results.append(await job())
            except Exception as err:  # one job's failure must not end the others
                on_error(err)

    await asyncio.gather(*(worker() for _ in range(min(workers, len(jobs)))))
    return results


def spawn(work: Coroutine[Any, Any, None], *, into: set[asyncio.Task[None]],
          on_error: OnError, name: str | None = None) -> asyncio.Task[None]:
    """Start ``work`` in the background, held in ``into`` until it ends; its exception (if
    any) is retrieved and handed to ``on_error``."""
    task = asyncio.create_task(work, name=name)
    into.add(task)

    def done(finished: asyncio.Task[None]) -> None:
        into.discard(finished)
        if finished.cancelled():
            return
        error = finished.exception()
        if isinstance(error, Exception):
            on_error(error)

    task.add_done_callback(done)
    return task


class Unlimited:
    """A no-op async context manager standing in for a semaphore (no limit)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


UNLIMITED = Unlimited()
