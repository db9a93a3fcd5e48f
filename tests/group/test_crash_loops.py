"""Members that keep dying young make a crash loop: their slot backs off (exponentially,
capped) before being re-created, the group says CrashLooping and why; a new spec starts
afresh, and the counts survive a restart through the saved state."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infrakit.group import controller, rolling
from infrakit.spi import flavor, group, instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, members, spec

LOOP = {"Threshold": 3, "Window": "10m", "YoungAge": "60s", "BackoffBase": "10s",
        "MaxBackoff": "40s"}
NO_PROBES = {"Interval": "0s", "CrashLoop": LOOP}


class Dying(FakeInstancePlugin):
    """Members of the logical IDs in ``dying`` (``"*"``: every member) exit at once: the
    provision succeeds, but the instance is never listed."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.dying: set[str] = set()
        self.times: dict[str | None, list[float]] = {}

    async def provision(self, spec: instance.Spec) -> instance.ID | None:
        assert self.clock is not None
        self.times.setdefault(spec.logical_id, []).append(self.clock.monotonic())
        iid = await super().provision(spec)
        if iid is not None and ({"*", spec.logical_id} & self.dying):
            self.vanish(iid)
        return iid


@pytest.fixture
def dying(clock: FakeClock) -> Dying:
    return Dying(clock)


def make(clock: FakeClock, dying: Dying, flavors: FakeFlavorPlugin, *,
         saved: list[rolling.UpdateState | None] | None = None) -> controller.Controller:
    async def on_state(gid: group.ID, state: rolling.UpdateState | None) -> None:
        if saved is not None:
            saved.append(state)

    return controller.Controller(resolver({"instance-fake": dying}),
                                 resolver({"flavor-fake": flavors}), poll_interval=1.0,
                                 clock=clock, rng=NoJitter(), on_state=on_state)


@pytest.fixture
async def ctl(clock: FakeClock, dying: Dying,
              flavors: FakeFlavorPlugin) -> AsyncIterator[controller.Controller]:
    found = make(clock, dying, flavors)
    try:
        yield found
    finally:
        await found.close()


def gaps(times: list[float]) -> list[float]:
    return [round(b - a) for a, b in itertools.pairwise(times)]


async def test_a_pet_that_exits_at_once_backs_off_exponentially_up_to_the_cap(
        ctl: controller.Controller, clock: FakeClock, dying: Dying) -> None:
    dying.dying = {"db-b"}
    await ctl.commit_group(spec(ids=["db-a", "db-b"], Health=NO_PROBES), False)
    await clock.advance(300)
    # Each death shows once its member goes unlisted for 10s (the expectation's TTL);
    # from the third one the slot waits 10s, 20s, 40s, 40s... before it is re-created.
    assert gaps(dying.times["db-b"])[:6] == [11, 11, 21, 31, 51, 51]
    assert dying.times["db-a"] == [0.0]  # the other pet is not held back
    status = await ctl.status(GID)
    assert status.phase == "CrashLooping" and status.crash_looping == ["db-b"]
    assert status.reason.startswith("logical ID db-b died young ")
    assert "(last: created, then not listed within 10s: it exited or vanished at once)" in \
        status.reason
    backoffs = [a.message for a in status.actions if a.kind == "crash-loop"]
    assert backoffs[-1].endswith("backing off 40s before re-creating")
    assert status.counts.existing == 1 and not status.converged


async def test_cattle_are_counted_per_group_and_every_creation_waits(
        ctl: controller.Controller, clock: FakeClock, dying: Dying) -> None:
    await ctl.commit_group(spec(size=3, Health=NO_PROBES), False)
    await clock.advance(1)
    for _ in range(3):  # three different members die young: one crash loop, the group's
        dying.vanish(members(dying)[0].id)
        await clock.advance(2)
    status = await ctl.status(GID)
    assert (status.phase, status.crash_looping) == ("CrashLooping", ["*"])
    assert status.reason.startswith("members died young 3 times within 600s (last: exited "
                                    "or vanished ")
    assert len(members(dying)) == 2  # the third replacement waits for the backoff
    await clock.advance(10)
    assert len(members(dying)) == 3


async def test_cattle_that_die_together_are_one_event_not_a_crash_loop(
        ctl: controller.Controller, clock: FakeClock, dying: Dying) -> None:
    await ctl.commit_group(spec(size=10, Health=NO_PROBES), False)
    await clock.advance(1)
    dying.vanish(*[member.id for member in members(dying)[:5]])  # half lost at once, young
    await clock.advance(2)
    status = await ctl.status(GID)
    assert (status.phase, status.crash_looping) == ("Converged", [])
    assert len(members(dying)) == 10  # healed at once, no backoff
    assert len([a for a in status.actions if a.kind == "died-young"]) == 5  # each is told


async def test_a_member_that_lived_past_young_age_is_not_a_crash(
        ctl: controller.Controller, clock: FakeClock, dying: Dying) -> None:
    await ctl.commit_group(spec(size=3, Health=NO_PROBES), False)
    await clock.advance(61)
    for _ in range(3):
        dying.vanish(members(dying)[0].id)
        await clock.advance(61)
    status = await ctl.status(GID)
    assert status.phase == "Converged" and status.crash_looping == []
    assert not [a for a in status.actions if a.kind == "died-young"]


async def test_a_new_spec_resets_the_crash_loop(ctl: controller.Controller,
                                                clock: FakeClock, dying: Dying) -> None:
    dying.dying = {"db-b"}
    await ctl.commit_group(spec(ids=["db-a", "db-b"], Health=NO_PROBES), False)
    await clock.advance(38)  # the third death at 33s: db-b waits until 43s
    assert (await ctl.status(GID)).phase == "CrashLooping"
    dying.dying = set()
    before = len(dying.times["db-b"])
    await ctl.commit_group(spec(ids=["db-a", "db-b"], note="v2", Health=NO_PROBES), False)
    await clock.advance(1)
    assert len(dying.times["db-b"]) > before  # re-created at once, no backoff
    await clock.advance(60)
    status = await ctl.status(GID)
    assert status.phase == "Converged" and status.crash_looping == []


async def test_the_counts_and_backoff_survive_a_restart_through_the_saved_state(
        clock: FakeClock, dying: Dying, flavors: FakeFlavorPlugin) -> None:
    saved: list[rolling.UpdateState | None] = []
    first = make(clock, dying, flavors, saved=saved)
    dying.dying = {"db-b"}
    committed = spec(ids=["db-a", "db-b"], Health=NO_PROBES)
    await first.commit_group(committed, False)
    await clock.advance(38)  # the third death at 33s: db-b waits until 43s
    await first.close()
    state = saved[-1]
    assert state is not None and state.idle and state.crashes is not None
    assert len(state.crashes.slots["db-b"].deaths) == 3
    stored = rolling.UpdateState.from_wire(state.to_wire())  # e.g. through the manager's store
    tried = len(dying.times["db-b"])

    second = make(clock, dying, flavors)
    try:
        await second.commit_group(committed, False, resume=stored)
        await clock.settle()
        status = await second.status(GID)
        assert (status.phase, status.crash_looping) == ("CrashLooping", ["db-b"])
        assert status.update is not None and status.update.crashes == stored.crashes
        await clock.advance(3)
        assert len(dying.times["db-b"]) == tried  # the backoff holds across the restart
        await clock.advance(3)
        assert len(dying.times["db-b"]) == tried + 1  # and ends when it was due
    finally:
        await second.close()


class Sick(FakeFlavorPlugin):
    """Members of logical ID ``db-b`` are always Unhealthy."""

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        self.calls["healthy"] += 1
        return flavor.Health.UNHEALTHY if inst.logical_id == "db-b" else flavor.Health.HEALTHY


async def test_an_always_unhealthy_pet_is_unhealthy_then_crash_looping_not_replaced_forever(
        clock: FakeClock, dying: Dying) -> None:
    ctl = make(clock, dying, Sick(clock=clock))
    health = {"Interval": "1s", "StartupGrace": "0s", "UnhealthyAfter": "2s",
              "MaxUnhealthy": 1, "CrashLoop": {**LOOP, "Threshold": 2, "BackoffBase": "5m",
                                               "MaxBackoff": "5m"}}
    try:
        await ctl.commit_group(spec(ids=["db-a", "db-b"], Health=health), False)
        await clock.advance(1)
        status = await ctl.status(GID)
        assert status.phase == "Unhealthy" and status.reason.startswith(
            "instance-000002 is Unhealthy (Flavor.Healthy of flavor-fake); replaced once "
            "Unhealthy for 2s")
        await clock.advance(20)
        status = await ctl.status(GID)
        assert (status.phase, status.crash_looping) == ("CrashLooping", ["db-b"])
        assert "(last: replaced as Unhealthy " in status.reason
        assert "Flavor.Healthy of flavor-fake answered Unhealthy" in status.reason
        tried = len(dying.times["db-b"])
        await clock.advance(200)
        assert len(dying.times["db-b"]) == tried == 2
    finally:
        await ctl.close()
