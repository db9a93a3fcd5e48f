"""Self-healing: vanished members come back, bootstrap members are adopted, unhealthy ones
are replaced after their grace and within the budget; Unknown never destroys."""

from typing import Any

from infrakit.group import controller, tags
from infrakit.spi import flavor
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin

from .conftest import GID, members, shas, spec

HEALTH = {"Interval": "5s", "StartupGrace": "30s", "UnhealthyAfter": "20s"}


async def test_vanished_members_are_replaced_at_the_next_poll(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=3), False)
    await clock.settle()
    instances.vanish(*[m.id for m in members(instances)[:2]])
    await clock.advance(9)
    assert len(members(instances)) == 1
    await clock.advance(1)
    assert len(members(instances)) == 3
    messages = [a.message for a in (await ctl.status(GID)).actions]
    assert messages[-2:] == ["created instance-000004 because count 1 < 3",
                             "created instance-000005 because count 2 < 3"]


async def test_bootstrap_members_are_adopted_with_the_current_hash(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    stray = instances.add(tags={tags.GROUP: GID, tags.CONFIG_SHA: tags.BOOTSTRAP})
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    current = (await ctl.status(GID)).config_sha
    assert shas(instances) == [current, current]
    assert stray in [m.id for m in members(instances)] and instances.calls["provision"] == 1
    assert (await ctl.status(GID)).actions[0].message == \
        f"adopted {stray} (tagged bootstrap) with config {current}"


async def test_a_handover_from_the_original_is_a_noop(ctl: controller.Controller,
                                                      clock: FakeClock,
                                                      instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    await ctl.free_group(GID)
    assert await ctl.commit_group(spec(size=2), False) == "Managing 2 instances"
    assert await ctl.commit_group(spec(size=2), False) == "Noop"
    await clock.advance(60)
    assert instances.calls["provision"] == 2 and instances.calls["destroy"] == 0


async def converged(ctl: controller.Controller, clock: FakeClock, **sections: Any) -> None:
    await ctl.commit_group(spec(size=sections.pop("size", 3), **sections), False)
    await clock.settle()


async def test_an_unhealthy_member_is_replaced_after_grace(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await converged(ctl, clock, Health=HEALTH)
    sick = members(instances)[0].id
    flavors.health[sick] = flavor.Health.UNHEALTHY
    await clock.advance(49)  # grace 30s, then 20s unhealthy
    assert sick in [m.id for m in members(instances)]
    await clock.advance(1)
    assert sick not in [m.id for m in members(instances)]
    await clock.settle()
    assert len(members(instances)) == 3
    kinds = [(a.kind, a.message) for a in (await ctl.status(GID)).actions]
    assert ("replaced", f"replaced {sick} because unhealthy for 20s") in kinds


async def test_a_member_must_stay_unhealthy_to_be_replaced(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await converged(ctl, clock, Health=HEALTH)
    flaky = members(instances)[0].id
    for _ in range(6):
        flavors.health[flaky] = flavor.Health.UNHEALTHY
        await clock.advance(10)
        flavors.health[flaky] = flavor.Health.HEALTHY
        await clock.advance(10)
    assert instances.calls["destroy"] == 0


async def test_unknown_health_never_destroys(ctl: controller.Controller, clock: FakeClock,
                                             instances: FakeInstancePlugin,
                                             flavors: FakeFlavorPlugin) -> None:
    await converged(ctl, clock, size=5, Health=HEALTH)
    flavors.health[members(instances)[0].id] = flavor.Health.UNKNOWN  # 1/5: within budget
    await clock.advance(3600)
    assert instances.calls["destroy"] == 0 and flavors.calls["healthy"] > 100


async def test_failed_probes_count_as_unknown(ctl: controller.Controller, clock: FakeClock,
                                              instances: FakeInstancePlugin,
                                              flavors: FakeFlavorPlugin) -> None:
    async def broken(properties: Any, inst: Any) -> flavor.Health:
        raise RuntimeError("probe crashed")

    flavors.healthy = broken  # type: ignore[method-assign]
    await converged(ctl, clock, Health=HEALTH)
    await clock.advance(600)
    assert instances.calls["destroy"] == 0 and len(members(instances)) == 3


async def test_above_the_budget_the_group_holds_and_says_why(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await converged(ctl, clock, size=5, Health=HEALTH)
    sick = [m.id for m in members(instances)[:3]]
    for iid in sick:
        flavors.health[iid] = flavor.Health.UNHEALTHY
    await clock.advance(300)
    status = await ctl.status(GID)
    assert instances.calls["destroy"] == 0
    assert (status.phase, status.reason) == ("Holding",
                                             "holding because 3/5 unhealthy exceeds budget 40%")
    assert [a.message for a in status.actions if a.kind == "holding"] == [status.reason]
    assert not status.converged
    flavors.health[sick[0]] = flavor.Health.HEALTHY  # 2/5 is within the budget
    await clock.advance(10)
    assert sorted(set(sick) - {m.id for m in members(instances)}) == sick[1:]


async def test_probes_run_at_the_health_interval(ctl: controller.Controller,
                                                 clock: FakeClock,
                                                 flavors: FakeFlavorPlugin) -> None:
    await converged(ctl, clock, size=2, Health={"Interval": "30s"})
    before = flavors.calls["healthy"]
    await clock.advance(60)
    assert flavors.calls["healthy"] - before == 4  # 2 members, every 30s (polls every 10s)


async def test_without_a_health_section_members_are_not_probed(ctl: controller.Controller,
                                                              clock: FakeClock,
                                                              flavors: FakeFlavorPlugin) -> None:
    await converged(ctl, clock)
    await clock.advance(600)
    assert flavors.calls["healthy"] == 0


class Lagging(FakeInstancePlugin):
    """An eventually consistent plugin: new instances show up, and destroyed ones go away,
    in listings only ``lag`` seconds later."""

    def __init__(self, clock: FakeClock, lag: float) -> None:
        super().__init__(clock=clock)
        self.lag = lag
        self.born: dict[str, float] = {}
        self.ghosts: dict[str, tuple[float, Any]] = {}

    async def provision(self, spec: Any) -> Any:
        iid = await super().provision(spec)
        assert self.clock is not None and iid is not None
        self.born[iid] = self.clock.monotonic()
        return iid

    async def destroy(self, instance_id: Any) -> None:
        found = self.instances.get(instance_id)
        await super().destroy(instance_id)
        assert self.clock is not None
        self.ghosts[instance_id] = (self.clock.monotonic(), found)

    async def describe_instances(self, tags: dict[str, str], properties: bool = False) -> Any:
        assert self.clock is not None
        now = self.clock.monotonic()
        live = [m for m in self.matching(tags) if now - self.born.get(m.id, -1e9) >= self.lag]
        return live + [m for when, m in self.ghosts.values() if now - when < self.lag]


async def test_a_lagging_listing_causes_no_second_create_or_destroy(
        clock: FakeClock, flavors: FakeFlavorPlugin) -> None:
    from infrakit.testing import resolver

    from .conftest import NoJitter

    lagging = Lagging(clock, lag=15.0)
    ctl = controller.Controller(resolver({"instance-fake": lagging}),
                                resolver({"flavor-fake": flavors}), poll_interval=10.0,
                                clock=clock, rng=NoJitter())
    try:
        await ctl.commit_group(spec(size=3), False)
        await clock.advance(60)
        assert lagging.calls["provision"] == 3
        await ctl.set_size(GID, 1)
        await clock.advance(60)
        assert (lagging.calls["destroy"], lagging.calls["provision"]) == (2, 3)
        assert (await ctl.describe_group(GID)).converged
    finally:
        await ctl.close()
