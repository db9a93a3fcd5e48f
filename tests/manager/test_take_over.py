"""A take-over that fails (a store that cannot be read, a backend refusing commits) is
logged, retried with a capped backoff, reported (``Manager.take_over``), and refused to
callers at once meanwhile; the manager in-process on fake time, over a fake backend."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from inprocess import Board, Manual, eventually

from infrakit import errors
from infrakit.manager import proxy, store_file, tenure
from infrakit.spi import group, instance
from infrakit.testing import FakeClock

GROUPS = ("a", "b", "c")


def spec(gid: str, *, size: int = 1) -> group.Spec:
    return group.Spec.from_wire({"ID": gid, "Properties": {"Allocation": {"Size": size}}})


class Backend:
    """A group plugin in memory that refuses commits of the groups in ``refusing``."""

    def __init__(self) -> None:
        self.held: dict[str, group.Spec] = {}
        self.refusing: dict[str, errors.InfrakitError] = {}
        self.commits: list[str] = []
        self.answering = asyncio.Event()
        """Cleared: commits wait (a backend that hangs)."""
        self.answering.set()

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None, version: str | None = None) -> str:
        await self.answering.wait()
        if spec.id in self.refusing:
            raise self.refusing[spec.id]
        if not pretend:
            self.commits.append(spec.id)
            self.held[spec.id] = spec
        return f"Managing {spec.id}"

    async def free_group(self, gid: group.ID) -> None:
        self._need(gid)
        del self.held[gid]

    async def describe_group(self, gid: group.ID) -> group.Description:
        self._need(gid)
        return group.Description()

    async def destroy_group(self, gid: group.ID) -> None:
        await self.free_group(gid)

    async def inspect_groups(self) -> list[group.Spec]:
        return list(self.held.values())

    async def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        self._need(gid)

    async def size(self, gid: group.ID) -> int:
        self._need(gid)
        return 1

    async def set_size(self, gid: group.ID, size: int) -> None:
        self._need(gid)

    async def pause(self, gid: group.ID) -> None:
        self._need(gid)

    async def resume(self, gid: group.ID) -> None:
        self._need(gid)

    async def abort(self, gid: group.ID) -> None:
        self._need(gid)

    async def wake(self, gid: group.ID | None = None) -> None:
        return None

    def _need(self, gid: str) -> None:
        if gid not in self.held:
            raise errors.NotFoundError(f"Group '{gid}' is not being watched", group=gid)


class Setup:
    def __init__(self, store_dir: pathlib.Path, *, ready_timeout: float = 5.0) -> None:
        self.clock = FakeClock()
        self.backend = Backend()
        self.leadership = Manual("mgr", Board())
        self.store = store_file.FileStore(store_dir, token=self.leadership.token)
        self.manager = proxy.Manager("mgr", leadership=self.leadership, store=self.store,
                                     backend=self.backend, backend_name="group-stateless",
                                     state_poll=60.0, clock=self.clock,
                                     ready_timeout=ready_timeout)

    def progress(self) -> tenure.Progress:
        found = self.manager.take_over()
        assert found is not None
        return found

    async def attempts_failed(self, count: int) -> None:
        """Once the take-over's ``count``-th attempt has failed (the store reads in a
        thread, so fake time alone does not get there)."""
        await eventually(lambda: (self.progress().phase, self.progress().attempts)
                         == ("retrying", count))

    async def done(self) -> None:
        await eventually(lambda: self.progress().phase == "done")


def stored(*gids: str) -> str:
    return json.dumps({"Groups": {gid: {"Plugin": "group-stateless",
                                        "Properties": spec(gid).to_wire()} for gid in gids}})


@pytest.fixture
async def setup(tmp_path: pathlib.Path) -> AsyncIterator[Setup]:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / store_file.CONFIG).write_text(stored(*GROUPS))
    running = Setup(tmp_path / "store", ready_timeout=0.2)
    await running.manager.start()
    try:
        yield running
    finally:
        await running.manager.stop()


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0),
                                                 (5, 16.0), (6, 30.0), (60, 30.0)])
def test_the_take_over_retries_double_up_to_a_cap(attempt: int, delay: float) -> None:
    assert tenure.retry_delay(attempt) == delay


async def test_a_backend_refusing_a_commit_is_retried_with_backoff_and_reported(
        setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infrakit.manager")
    setup.backend.refusing["c"] = errors.TemporaryError("flavor-x is not running")
    setup.leadership.grant()
    await setup.attempts_failed(1)
    assert setup.progress().summary == (
        "taking over: 2 of 3 groups committed; last error: group 'c': flavor-x is not "
        "running; next try in 1s")
    assert "took over 2 of 3 groups" in caplog.text
    assert "took over 3" not in caplog.text
    await setup.clock.advance(0.9)
    assert setup.progress().summary.endswith("next try in 100ms")
    await setup.clock.advance(0.1)
    await setup.attempts_failed(2)
    assert setup.progress().summary.endswith("next try in 2s")
    await setup.clock.advance(2)
    await setup.attempts_failed(3)
    assert setup.progress().summary.endswith("next try in 4s")

    del setup.backend.refusing["c"]
    await setup.clock.advance(4)
    await setup.done()
    assert setup.progress().summary == "took over 3 groups"
    assert sorted(setup.backend.held) == sorted(GROUPS)
    assert "mgr: took over 3 groups" in caplog.text
    assert await setup.manager.size(group.ID("c")) == 1


@pytest.mark.parametrize("call", ["describe_group", "size", "set_size", "pause",
                                  "destroy_group", "inspect_groups"])
async def test_callers_hear_at_once_that_the_leader_is_still_taking_over(
        setup: Setup, call: str) -> None:
    setup.backend.refusing["c"] = errors.TemporaryError("flavor-x is not running")
    setup.leadership.grant()
    await setup.attempts_failed(1)
    args: dict[str, tuple[Any, ...]] = {"inspect_groups": (), "set_size": ("a", 2)}
    with pytest.raises(errors.TemporaryError) as refused:
        await getattr(setup.manager, call)(*args.get(call, ("a",)))
    assert refused.value.message == (
        "manager 'mgr' leads but is still taking over: 2 of 3 groups committed; last error: "
        "group 'c': flavor-x is not running; next try in 1s")
    assert refused.value.delay == 1.0


async def test_callers_are_told_how_a_slow_first_attempt_stands_rather_than_kept_waiting(
        setup: Setup) -> None:
    setup.backend.answering.clear()
    setup.leadership.grant()
    with pytest.raises(errors.TemporaryError) as refused:
        await setup.manager.describe_group(group.ID("a"))
    assert refused.value.message == (
        "manager 'mgr' leads but is still taking over: 0 of 3 groups committed")
    setup.backend.answering.set()
    await setup.done()
    assert await setup.manager.size(group.ID("a")) == 1


@pytest.mark.parametrize(("change", "answer", "summary", "held"), [
    (lambda manager: manager.commit_group(spec("c", size=2), False), "Managing c",
     "took over 3 groups", ["a", "b", "c"]),
    (lambda manager: manager.free_group(group.ID("c")), None,
     "took over 2 groups", ["a", "b"]),
], ids=["commit", "free"])
async def test_committing_or_freeing_a_group_the_take_over_could_not_commit_completes_it(
        setup: Setup, change: Callable[[proxy.Manager], Awaitable[str | None]],
        answer: str | None, summary: str, held: list[str]) -> None:
    setup.backend.refusing["c"] = errors.InvalidError("no such flavor plugin")
    setup.leadership.grant()
    await setup.attempts_failed(1)
    del setup.backend.refusing["c"]
    assert await change(setup.manager) == answer
    assert setup.progress().summary == summary
    assert sorted(setup.backend.held) == held
    assert await setup.manager.size(group.ID("a")) == 1


async def test_a_store_that_cannot_be_read_is_retried_and_reported_until_repaired(
        setup: Setup) -> None:
    path = setup.store.config_path
    path.write_text("{not json")
    setup.leadership.grant()
    await setup.attempts_failed(1)
    summary = setup.progress().summary
    assert summary.startswith(f"taking over: cannot read the store; last error: corrupt "
                              f"store {path}: bad JSON")
    assert summary.endswith("; next try in 1s")
    with pytest.raises(errors.TemporaryError, match="leads but is still taking over: "
                                                    "cannot read the store"):
        await setup.manager.commit_group(spec("d"), False)
    await setup.clock.advance(1)
    await setup.attempts_failed(2)
    assert setup.progress().summary.endswith("; next try in 2s")
    path.write_text(stored("a"))
    await setup.clock.advance(2)
    await setup.done()
    assert setup.progress().summary == "took over 1 group"
    assert list(setup.backend.held) == ["a"]
