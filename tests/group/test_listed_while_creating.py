"""An instance plugin may list a new instance before its Provision returns (Docker lists a
container once it is created, before it is started): the group counts it once, never as a
member and a creation both, so it neither destroys a healthy member as surplus nor lets a
rolling update take more members down than allowed."""

from __future__ import annotations

from typing import Any

from infrakit.group import controller
from infrakit.spi import instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, members, spec


class ListedEarly(FakeInstancePlugin):
    """Each instance is listed at once, and its Provision returns ``provision_delay`` later."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.returned: set[instance.ID] = set()
        """Instances whose Provision has returned."""

    async def provision(self, spec: instance.Spec) -> instance.ID | None:
        assert self.clock is not None
        self.calls["provision"] += 1
        iid = self.add(tags=spec.tags, logical_id=spec.logical_id)
        self.specs[iid] = spec
        self.history.append(("provision", iid))
        await self.clock.sleep(self.provision_delay)
        self.returned.add(iid)
        return iid


async def group_on(clock: FakeClock, flavors: FakeFlavorPlugin,
                   plugin: FakeInstancePlugin) -> controller.Controller:
    return controller.Controller(resolver({"instance-fake": plugin}),
                                 resolver({"flavor-fake": flavors}), poll_interval=1.0,
                                 clock=clock, rng=NoJitter())


async def test_members_listed_before_their_provision_returns_are_not_counted_twice(
        clock: FakeClock, flavors: FakeFlavorPlugin) -> None:
    early = ListedEarly(clock=clock, provision_delay=5.0)
    ctl = await group_on(clock, flavors, early)
    try:
        await ctl.commit_group(spec(size=5), False)
        await woken(ctl, clock, 3.0)  # looks while all five creations are in flight
        status = await ctl.status(GID)
        assert status.members == 5 and status.counts.creating == 5 - status.counts.existing
        await woken(ctl, clock, 10.0)
        assert early.calls["provision"] == 5
        assert [verb for verb, _ in early.history].count("destroy") == 0
        assert len(members(early)) == 5 and (await ctl.describe_group(GID)).converged

        early.vanish(*[m.id for m in members(early)[:2]])  # two die: two replacements
        await woken(ctl, clock, 12.0)
        assert early.calls["provision"] == 7
        assert [verb for verb, _ in early.history].count("destroy") == 0
        assert len(members(early)) == 5
    finally:
        await ctl.close()


async def test_a_rolling_update_never_counts_a_listed_creation_as_available_twice(
        clock: FakeClock, flavors: FakeFlavorPlugin) -> None:
    early = ListedEarly(clock=clock, provision_delay=5.0)
    ctl = await group_on(clock, flavors, early)
    try:
        await ctl.commit_group(spec(size=4), False)
        await woken(ctl, clock, 12.0)
        before = {m.id for m in members(early)}
        await ctl.commit_group(spec(size=4, note="v2", Update={"MaxSurge": 1,
                                                             "MaxUnavailable": 0}), False)
        fewest = 4
        for _ in range(120):
            await woken(ctl, clock, 0.5)
            # up: old members, and new ones whose Provision has returned
            fewest = min(fewest, len([m for m in members(early)
                                      if m.id in before or m.id in early.returned]))
        assert fewest >= 4  # MaxUnavailable 0: never fewer than four members up
        assert not before & {m.id for m in members(early)}
    finally:
        await ctl.close()


async def woken(ctl: controller.Controller, clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` pass with the group woken every 100ms, as an engine's event stream
    wakes it (``--notify``) while creations are in flight."""
    for _ in range(round(seconds / 0.1)):
        await ctl.wake(GID)
        await clock.advance(0.1)
