"""Rolling updates: order, health gate, HealthTimeout pause, pause/resume/abort, surge,
and a new commit taking over an update in flight."""

import pytest

from infrakit import errors
from infrakit.group import controller, tags
from infrakit.spi import flavor
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin

from .conftest import GID, members, shas, spec


async def start(ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
                **kwargs: object) -> None:
    await ctl.commit_group(spec(**kwargs), False)  # type: ignore[arg-type]
    await clock.settle()
    instances.history.clear()


async def stalled(ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
                  flavors: FakeFlavorPlugin) -> None:
    """Three members on v1, then a commit of v2 whose new members never turn Healthy."""
    await start(ctl, clock, instances, size=3)
    flavors.default_health = flavor.Health.UNKNOWN
    await ctl.commit_group(spec(size=3, note="v2"), False)


def counts(instances: FakeInstancePlugin, start: int) -> list[int]:
    """The member count after each provision or destroy since the update began."""
    found, now = [], start
    for event, _ in instances.history:
        now += 1 if event == "provision" else -1
        found.append(now)
    return found


async def test_defaults_replace_one_member_at_a_time(ctl: controller.Controller,
                                                     clock: FakeClock,
                                                     instances: FakeInstancePlugin) -> None:
    await start(ctl, clock, instances, size=3)
    old = [m.id for m in members(instances)]
    await ctl.commit_group(spec(size=3, note="v2"), False)
    await clock.advance(60)
    assert instances.history == [e for iid in old for e in
                                 (("destroy", iid), ("provision", instances.history[
                                     instances.history.index(("destroy", iid)) + 1][1]))]
    assert len(set(shas(instances))) == 1 and (await ctl.describe_group(GID)).converged
    assert (await ctl.status(GID)).update is None


async def test_growing_rolls_first_then_adds(ctl: controller.Controller, clock: FakeClock,
                                             instances: FakeInstancePlugin) -> None:
    await start(ctl, clock, instances, size=2)
    await ctl.commit_group(spec(size=4, note="v2"), False)
    await clock.advance(60)
    sizes = counts(instances, 2)
    last_destroy = max(n for n, (event, _) in enumerate(instances.history) if event == "destroy")
    assert max(sizes[:last_destroy + 1]) == 2 and sizes[-1] == 4
    assert len(set(shas(instances))) == 1


async def test_shrinking_removes_first_then_rolls(ctl: controller.Controller, clock: FakeClock,
                                                  instances: FakeInstancePlugin) -> None:
    await start(ctl, clock, instances, size=4)
    await ctl.commit_group(spec(size=2, note="v2"), False)
    await clock.advance(60)
    assert instances.history[:2] == [("destroy", "instance-000001"),
                                     ("destroy", "instance-000002")]
    assert [e for e, _ in instances.history[2:]] == ["destroy", "provision"] * 2
    assert len(members(instances)) == 2 and len(set(shas(instances))) == 1


async def test_a_new_member_must_be_healthy_before_the_next_old_one_goes(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await stalled(ctl, clock, instances, flavors)
    await clock.advance(300)
    assert [e for e, _ in instances.history] == ["destroy", "provision"]
    assert (await ctl.status(GID)).phase == "Updating"
    flavors.health[instances.history[1][1]] = flavor.Health.HEALTHY
    await clock.advance(10)
    assert [e for e, _ in instances.history] == ["destroy", "provision"] * 2


async def test_health_timeout_pauses_the_update_and_destroys_no_more(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await start(ctl, clock, instances, size=3)
    flavors.default_health = flavor.Health.UNHEALTHY
    await ctl.commit_group(spec(size=3, note="v2", Update={"HealthTimeout": "60s"}), False)
    await clock.advance(59)
    assert (await ctl.status(GID)).phase == "Updating"
    await clock.advance(10)
    status = await ctl.status(GID)
    assert (status.phase, status.reason) == (
        "Paused", "paused because instance-000004 was not Healthy within 60s")
    assert status.update is not None and status.update.paused
    await clock.advance(3600)
    assert [e for e, _ in instances.history] == ["destroy", "provision"]
    assert [a.message for a in status.actions if a.kind == "paused"] == [status.reason]


async def test_pause_and_resume(ctl: controller.Controller, clock: FakeClock,
                                instances: FakeInstancePlugin) -> None:
    await start(ctl, clock, instances, size=3)
    await ctl.commit_group(spec(size=3, note="v2"), False)
    await ctl.pause(GID)
    await clock.advance(300)
    status = await ctl.status(GID)
    assert instances.history == [] and (status.phase, status.reason) == ("Paused",
                                                                         "paused by request")
    await ctl.resume(GID)
    await clock.advance(60)
    assert len(set(shas(instances))) == 1 and len(instances.history) == 6


async def test_abort_stops_the_update_until_the_next_commit(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await stalled(ctl, clock, instances, flavors)
    await clock.settle()
    await ctl.abort(GID)
    flavors.default_health = flavor.Health.HEALTHY
    await clock.advance(300)
    status = await ctl.status(GID)
    assert len(instances.history) == 2 and len(set(shas(instances))) == 2
    assert status.phase == "Aborted" and not (await ctl.describe_group(GID)).converged
    await ctl.commit_group(spec(size=3, note="v3"), False)
    await clock.advance(60)
    assert len(set(shas(instances))) == 1 and (await ctl.describe_group(GID)).converged


async def test_update_control_needs_an_update_in_flight(ctl: controller.Controller,
                                                        clock: FakeClock,
                                                        instances: FakeInstancePlugin) -> None:
    await start(ctl, clock, instances, size=1)
    for call in (ctl.pause, ctl.resume, ctl.abort):
        with pytest.raises(errors.ConflictError, match="has no rolling update in flight"):
            await call(GID)


async def test_a_new_commit_stops_the_update_in_flight(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await stalled(ctl, clock, instances, flavors)
    await clock.advance(30)
    assert len(instances.history) == 2
    flavors.default_health = flavor.Health.HEALTHY
    await ctl.commit_group(spec(size=3, note="v3"), False)
    v3 = (await ctl.status(GID)).config_sha
    await clock.advance(60)
    made_after = [instances.specs[iid] for e, iid in instances.history[2:] if e == "provision"]
    assert made_after and {s.tags[tags.CONFIG_SHA] for s in made_after} == {v3}
    assert shas(instances) == [v3] * 3


async def test_a_surge_adds_new_members_before_removing_old_ones(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    update = {"MaxSurge": "25%", "MaxUnavailable": 0}
    await start(ctl, clock, instances, size=8, Update=update)
    await ctl.commit_group(spec(size=8, note="v2", Update=update), False)
    await clock.advance(60)
    sizes = counts(instances, 8)
    assert [e for e, _ in instances.history[:2]] == ["provision", "provision"]
    assert min(sizes) >= 8 and max(sizes) == 10 and sizes[-1] == 8
    assert len(set(shas(instances))) == 1


async def test_status_follows_the_update(ctl: controller.Controller, clock: FakeClock,
                                         instances: FakeInstancePlugin,
                                         flavors: FakeFlavorPlugin) -> None:
    await stalled(ctl, clock, instances, flavors)
    await clock.advance(5)
    flavors.health[instances.history[1][1]] = flavor.Health.HEALTHY
    await clock.advance(10)
    status = await ctl.status(GID)
    assert status.update is not None and status.update.done == [instances.history[1][1]]
    assert status.reason == (f"rolling update to {status.config_sha[:7]}: 2 of 3 members on "
                             "it, 1 of them passed the health gate")
