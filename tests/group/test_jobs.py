"""Jobs that raise are handed to ``on_error`` (the supervisor records them as actions),
never left for asyncio to report as "Task exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc

from infrakit.group import jobs


async def test_bounded_runs_every_job_and_hands_each_failure_to_on_error(
        unhandled: list[str]) -> None:
    failures: list[Exception] = []

    async def ok(n: int) -> int:
        await asyncio.sleep(0)
        return n

    async def boom(n: int) -> int:
        await asyncio.sleep(0)
        raise ValueError(f"job {n} broke")

    work = [lambda n=n: (boom(n) if n % 2 else ok(n)) for n in range(6)]
    results = await jobs.bounded(work, workers=2, on_error=failures.append)
    assert sorted(results) == [0, 2, 4]
    assert sorted(str(e) for e in failures) == ["job 1 broke", "job 3 broke", "job 5 broke"]
    gc.collect()
    assert unhandled == []


async def test_a_spawned_task_that_raises_is_retrieved_and_reported(
        unhandled: list[str]) -> None:
    failures: list[Exception] = []
    held: set[asyncio.Task[None]] = set()

    async def broken() -> None:
        raise RuntimeError("batch broke")

    task = jobs.spawn(broken(), into=held, on_error=failures.append)
    del task
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    gc.collect()
    assert [str(e) for e in failures] == ["batch broke"] and not held
    assert unhandled == []
