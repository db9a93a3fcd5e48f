"""The fence of ``infrakit-group-default --manager NAME`` in-process: every mutating call
is refused unless the manager leads, a stand-down stops every call in flight and every
supervisor, and the fence's task is gone once the plugin stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from infrakit import errors
from infrakit.group import controller
from infrakit.group import serve as group_serve
from infrakit.spi import group
from infrakit.testing import FakeClock, FakeInstancePlugin

from .conftest import GID, members, spec

REFUSED = "fenced: manager 'mgr' is gone or does not lead"


class FakeManager:
    """Answers IsLeader as the test says; ``answering`` cleared: the answer waits."""

    def __init__(self) -> None:
        self.leader = True
        self.answering = asyncio.Event()
        self.answering.set()
        self.asked = 0

    async def is_leader(self) -> bool:
        self.asked += 1
        await self.answering.wait()
        return self.leader


class Managers:
    """The fence's view of the plugins dir: one manager, ``mgr``."""

    def __init__(self, found: FakeManager) -> None:
        self.found = found

    def manager(self, name: str) -> FakeManager:
        assert name == "mgr"
        return self.found


class Blocking(controller.Controller):
    """A controller whose commits wait for ``go`` once they have been let through."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def commit_group(self, spec: group.Spec, pretend: bool, **kwargs: Any) -> str:
        self.entered.set()
        await self.go.wait()
        return await super().commit_group(spec, pretend, **kwargs)


async def until_asked(boss: FakeManager, *, more_than: int) -> None:
    for _ in range(1000):
        if boss.asked > more_than:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the manager was never asked")


@pytest.fixture
def boss() -> FakeManager:
    return FakeManager()


@pytest.fixture
def fence(ctl: controller.Controller, boss: FakeManager) -> group_serve.Fence:
    return group_serve.Fence("mgr", ctl, Managers(boss), interval=0.05)


@pytest.fixture
async def served(ctl: controller.Controller, fence: group_serve.Fence, clock: FakeClock,
                 instances: FakeInstancePlugin) -> group_serve.Served:
    """A fenced plugin supervising a group of two, its manager leading."""
    plugin = group_serve.Served(ctl, fence=fence)
    await plugin.commit_group(spec(size=2), False)
    await clock.advance_until(lambda: len(members(instances)) == 2)
    return plugin


Call = Callable[[group_serve.Served, list[str]], Awaitable[Any]]

MUTATING: dict[str, Call] = {
    "CommitGroup": lambda s, ids: s.commit_group(spec(size=3), False),
    "FreeGroup": lambda s, ids: s.free_group(GID),
    "DestroyGroup": lambda s, ids: s.destroy_group(GID),
    "DestroyInstances": lambda s, ids: s.destroy_instances(GID, ids[:1]),
    "SetSize": lambda s, ids: s.set_size(GID, 0),
    "Pause": lambda s, ids: s.pause(GID),
    "Resume": lambda s, ids: s.resume(GID),
    "Abort": lambda s, ids: s.abort(GID),
}

OPEN: dict[str, Call] = {
    "CommitGroup pretend": lambda s, ids: s.commit_group(spec(size=3), True),
    "DescribeGroup": lambda s, ids: s.describe_group(GID),
    "InspectGroups": lambda s, ids: s.inspect_groups(),
    "Size": lambda s, ids: s.size(GID),
    "Wake": lambda s, ids: s.wake(GID),
}


@pytest.mark.parametrize("call", sorted(MUTATING))
async def test_every_mutating_call_is_refused_while_the_manager_does_not_lead(
        served: group_serve.Served, boss: FakeManager, clock: FakeClock,
        instances: FakeInstancePlugin, call: str) -> None:
    ids = [m.id for m in members(instances)]
    boss.leader = False
    with pytest.raises(errors.NotLeaderError, match=REFUSED) as refused:
        await MUTATING[call](served, ids)
    assert call in refused.value.message
    await clock.advance(30)
    assert [m.id for m in members(instances)] == ids and instances.calls["destroy"] == 0
    assert [s.id for s in await served.inspect_groups()] == [GID]  # still supervised


@pytest.mark.parametrize("call", sorted(OPEN))
async def test_reads_and_wake_stay_open_while_the_manager_does_not_lead(
        served: group_serve.Served, boss: FakeManager, call: str) -> None:
    boss.leader = False
    await OPEN[call](served, [])


async def test_a_call_is_refused_when_the_manager_hangs(
        served: group_serve.Served, boss: FakeManager, instances: FakeInstancePlugin) -> None:
    boss.answering.clear()
    with pytest.raises(errors.NotLeaderError, match=REFUSED):
        await served.set_size(GID, 0)
    assert len(members(instances)) == 2


async def test_a_commit_let_through_before_a_stand_down_supervises_nothing_after_it(
        clock: FakeClock, instances: FakeInstancePlugin, boss: FakeManager,
        ctl: controller.Controller) -> None:
    blocking = Blocking(ctl._plugins.instance, ctl._plugins.flavor, clock=clock)
    fence = group_serve.Fence("mgr", blocking, Managers(boss), interval=0.05)
    plugin = group_serve.Served(blocking, fence=fence)
    try:
        commit = asyncio.create_task(plugin.commit_group(spec(size=2), False))
        await blocking.entered.wait()  # past the fence's check, not acted yet
        boss.leader = False
        await fence.round()  # the fence stands the plugin down
        blocking.go.set()
        with pytest.raises(errors.NotLeaderError, match="stopped leading while CommitGroup"):
            await commit
        assert await blocking.inspect_groups() == []
        await clock.advance(30)
        assert members(instances) == []
    finally:
        await blocking.close()


async def test_a_yes_that_arrives_after_a_stand_down_lets_nothing_act(
        served: group_serve.Served, fence: group_serve.Fence, boss: FakeManager,
        instances: FakeInstancePlugin, clock: FakeClock) -> None:
    fence.interval = 30.0  # the question is still open when the answer comes
    boss.answering.clear()
    asked = boss.asked
    resize = asyncio.create_task(served.set_size(GID, 0))
    await until_asked(boss, more_than=asked)  # the call is asking the manager
    await fence.stand_down()
    boss.answering.set()  # "yes", but for a question asked before the stand-down
    with pytest.raises(errors.NotLeaderError, match=REFUSED):
        await resize
    await clock.advance(30)
    assert len(members(instances)) == 2 and await served.inspect_groups() == []


async def test_a_stand_down_stops_every_group_and_leaves_the_instances(
        served: group_serve.Served, fence: group_serve.Fence, boss: FakeManager,
        instances: FakeInstancePlugin) -> None:
    boss.leader = False
    await fence.round()
    assert await served.inspect_groups() == []
    assert len(members(instances)) == 2


async def test_the_fence_task_is_over_once_the_plugin_stops(
        ctl: controller.Controller, boss: FakeManager) -> None:
    fence = group_serve.Fence("mgr", ctl, Managers(boss), interval=0.05)
    boss.answering.clear()  # the fence is waiting for its manager when the plugin stops
    async with fence.watching():
        await until_asked(boss, more_than=0)
    assert fence.task is not None and fence.task.done()
