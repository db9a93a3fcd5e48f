"""Batching: changes that arrive within a short window share one Terraform run.

The plugin's Provision, Destroy and Label each :meth:`Batcher.submit` a :class:`Job` and wait
for it; Describe may :meth:`Batcher.request` a repair without waiting. One task takes what
has queued once ``window`` seconds have passed since the first of it arrived, and hands it
to the runner (:func:`.apply.run`); a run at a time, so jobs that arrive during a run form
the next batch. Each job's future is resolved by the runner: the caller returns only once
the apply that carried its change succeeded, or raises that apply's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from infrakit import errors
from infrakit.spi import instance

log = logging.getLogger(__name__)

Kind = Literal["provision", "destroy", "label", "repair"]


@dataclass(eq=False)
class Job:
    """One change waiting for an apply."""

    kind: Kind
    id: instance.ID | None
    """The instance (``None`` for a repair)."""
    future: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def done(self, error: BaseException | None = None) -> None:
        """Resolve the job (once; a caller that gave up is not an error)."""
        if self.future.done():
            return
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)


Runner = Callable[[list[Job]], Awaitable[None]]


class Batcher:
    """Collects jobs for ``window`` seconds, then runs them together with ``run``."""

    def __init__(self, run: Runner, *, window: float) -> None:
        self._run = run
        self.window = window
        self._queue: list[Job] = []
        self._running: list[Job] = []
        self._first = 0.0
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Task[None] | None = None
        self.batches = 0
        """How many batches have run."""

    async def submit(self, kind: Kind, iid: instance.ID) -> None:
        """Queue a change to ``iid`` and wait until an apply has carried it out."""
        job = self._add(kind, iid)
        await job.future

    def request(self, kind: Kind = "repair") -> None:
        """Queue a run (a repair: the files and the state to agree) without waiting; one
        queued repair is enough."""
        if any(job.kind == kind for job in self._queue):
            return
        job = self._add(kind, None)
        job.future.add_done_callback(_ignore)

    def pending(self) -> dict[instance.ID, Kind]:
        """The instances with a change queued or being applied."""
        return {job.id: job.kind for job in (*self._running, *self._queue)
                if job.id is not None}

    async def close(self) -> None:
        """Stop: a batch being applied finishes first; queued jobs fail as unavailable."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._current is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._current
        for job in self._queue:
            job.done(errors.Unavailable("instance-terraform is stopping"))
        self._queue = []

    def _add(self, kind: Kind, iid: instance.ID | None) -> Job:
        job = Job(kind, iid)
        if not self._queue:
            self._first = asyncio.get_running_loop().time()
        self._queue.append(job)
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return job

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            await asyncio.sleep(max(0.0, self._first + self.window - loop.time()))
            jobs, self._queue = self._queue, []
            self._arrived.clear()
            self._running = jobs
            self.batches += 1
            # Shielded: a batch under way is finished (its files and state must agree)
            # even when the plugin stops; close() waits for it.
            self._current = loop.create_task(self._carry_out(jobs))
            try:
                await asyncio.shield(self._current)
            finally:
                self._running = []

    async def _carry_out(self, jobs: list[Job]) -> None:
        try:
            await self._run(jobs)
        except errors.InfrakitError as exc:
            log.error("batch of %d failed: %s", len(jobs), exc.message)
            for job in jobs:
                job.done(exc)
        except Exception as exc:  # a bug must fail the callers, not hang them
            log.exception("batch of %d failed", len(jobs))
            for job in jobs:
                job.done(errors.PermanentError(f"instance-terraform: {type(exc).__name__}: "
                                               f"{exc}"))
        for job in jobs:
            job.done()


def _ignore(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a failed repair is logged by the runner
