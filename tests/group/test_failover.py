"""A rolling update's state leaves through ``on_state`` and a new leader resumes it."""

from infrakit.group import controller, rolling
from infrakit.spi import flavor, group
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, members, shas, spec


def leader(clock: FakeClock, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin,
           saved: list[rolling.UpdateState | None]) -> controller.Controller:
    async def on_state(gid: group.ID, state: rolling.UpdateState | None) -> None:
        assert gid == GID
        saved.append(state)

    return controller.Controller(resolver({"instance-fake": instances}),
                                 resolver({"flavor-fake": flavors}), clock=clock,
                                 on_state=on_state, rng=NoJitter())


async def test_the_update_state_is_persisted_until_it_ends(
        clock: FakeClock, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin) -> None:
    saved: list[rolling.UpdateState | None] = []
    ctl = leader(clock, instances, flavors, saved)
    try:
        await ctl.commit_group(spec(size=2), False)
        await clock.settle()
        await ctl.commit_group(spec(size=2, note="v2"), False)
        await clock.advance(60)
    finally:
        await ctl.close()
    target = shas(instances)[0]
    first, *_, last = saved
    assert first == rolling.UpdateState(target=target) and last is None
    assert any(s is not None and len(s.done) == 1 for s in saved)


async def test_a_new_leader_continues_a_paused_update_where_it_stopped(
        clock: FakeClock, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin) -> None:
    saved: list[rolling.UpdateState | None] = []
    first = leader(clock, instances, flavors, saved)
    await first.commit_group(spec(size=2), False)
    await clock.settle()
    flavors.default_health = flavor.Health.UNKNOWN
    await first.commit_group(spec(size=4, note="v2"), False)
    await clock.advance(5)
    await first.pause(GID)
    await first.close()
    state = saved[-1]
    assert state is not None and state.paused and state.hold_size == 2
    stored = rolling.UpdateState.from_wire(state.to_wire())  # e.g. through the manager's store

    second = leader(clock, instances, flavors, [])
    try:
        assert await second.commit_group(spec(size=4, note="v2"), False, resume=stored) == \
            "Managing 4 instances"
        flavors.default_health = flavor.Health.HEALTHY
        await clock.advance(60)
        assert len(members(instances)) == 2  # still paused, and held at the old size
        assert (await second.status(GID)).phase == "Paused"
        await second.resume(GID)
        await clock.advance(60)
        assert len(members(instances)) == 4 and len(set(shas(instances))) == 1
    finally:
        await second.close()


async def test_a_saved_state_for_another_config_is_ignored(
        clock: FakeClock, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin) -> None:
    ctl = leader(clock, instances, flavors, [])
    try:
        stale = rolling.UpdateState(target="someotherconfig", paused=True)
        await ctl.commit_group(spec(size=2), False, resume=stale)
        await clock.settle()
        assert (await ctl.status(GID)).update is None and len(members(instances)) == 2
    finally:
        await ctl.close()
