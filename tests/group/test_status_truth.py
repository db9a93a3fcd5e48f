"""The status says what is true: counts that add up (also while a big change is under
way), each member listed with its health, age, config and version, a creation in flight
listed as such, and replacement reasons that name versions."""

from __future__ import annotations

from infrakit.group import controller, rolling, roster
from infrakit.spi import flavor, group, instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, NoJitter, members, shas, spec


class Staggered(FakeInstancePlugin):
    """The n-th provision takes n seconds."""

    started = 0

    async def provision(self, spec: instance.Spec) -> instance.ID | None:
        assert self.clock is not None
        self.started += 1
        await self.clock.sleep(self.started)
        return await super().provision(spec)


async def test_counts_follow_a_long_creation_batch_as_it_goes(
        clock: FakeClock, flavors: FakeFlavorPlugin) -> None:
    staggered = Staggered(clock=clock)
    ctl = controller.Controller(resolver({"instance-fake": staggered}),
                                resolver({"flavor-fake": flavors}), clock=clock,
                                rng=NoJitter())
    try:
        await ctl.commit_group(spec(size=40), False)
        await clock.advance(25.5)  # 25 created; the batch goes on (no reconcile meanwhile)
        status = await ctl.status(GID)
        assert len(members(staggered)) == 25
        assert status.members == 40 and status.phase == "Converging"
        counts = status.counts
        assert (counts.expected, counts.existing, counts.creating) == (40, 25, 15)
        assert status.reason == "25 of 40 members exist; creating 15, removing 0"
        assert [m.state for m in status.instances].count("creating") == 15
    finally:
        await ctl.close()


async def test_every_member_is_listed_with_health_age_and_config(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await ctl.commit_group(spec(ids=["db-a", "db-b"], Health={"Interval": "5s"}), False,
                           version="7")
    await clock.advance(6)
    flavors.health["instance-000002"] = flavor.Health.UNHEALTHY
    await clock.advance(5)
    status = await ctl.status(GID)
    rows = {m.id: m for m in status.instances}
    assert set(rows) == {"instance-000001", "instance-000002"}
    first, second = rows["instance-000001"], rows["instance-000002"]
    assert (first.logical_id, first.state, first.health) == ("db-a", "running", "Healthy")
    assert first.created == clock.time() - 11 and first.config == status.config_sha[:7]
    assert first.version == "7"
    assert (second.health, second.transition, second.since) == (
        "Unhealthy", "became Unhealthy", clock.time() - 1)  # probed at 10s
    counts = status.counts
    assert (counts.healthy, counts.unhealthy, counts.unknown, counts.existing) == (1, 1, 0, 2)
    assert counts.healthy + counts.unhealthy + counts.unknown == counts.existing
    assert status.phase == "Unhealthy" and not status.converged


async def test_converged_means_every_member_is_healthy(
        ctl: controller.Controller, clock: FakeClock, flavors: FakeFlavorPlugin) -> None:
    flavors.default_health = flavor.Health.UNKNOWN
    await ctl.commit_group(spec(size=1, Health={"Interval": "5s"}), False)
    await clock.advance(6)
    status = await ctl.status(GID)
    assert (status.phase, status.converged) == ("Converging", False)
    assert status.reason == "waiting for 1 member to be probed Healthy (their health is Unknown)"
    flavors.default_health = flavor.Health.HEALTHY
    await clock.advance(10)
    status = await ctl.status(GID)
    assert (status.phase, status.converged) == ("Converged", True)
    assert status.reason == "1 member match the spec, all Healthy"
    assert (await ctl.describe_group(GID)).converged


async def test_a_rolling_replacement_names_the_versions(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=1), False, version="1")
    await clock.settle()
    old = members(instances)[0].id
    await ctl.commit_group(spec(size=1, note="v2"), False, version="2")
    await clock.advance(30)
    status = await ctl.status(GID)
    assert len(set(shas(instances))) == 1 and old not in {m.id for m in members(instances)}
    assert f"replaced {old} (v1 → v2, rolling update)" in [a.message for a in status.actions]


async def test_without_versions_a_rolling_replacement_names_short_hashes(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=1), False)
    await clock.settle()
    old = members(instances)[0]
    await ctl.commit_group(spec(size=1, note="v2"), False)
    await clock.advance(30)
    status = await ctl.status(GID)
    was, now = old.tags["infrakit.config_sha"][:7], status.config_sha[:7]
    assert f"replaced {old.id} ({was} → {now}, rolling update)" in [
        a.message for a in status.actions]


async def test_versions_survive_a_restart_in_the_saved_state(
        clock: FakeClock, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin) -> None:
    saved: list[rolling.UpdateState | None] = []

    async def on_state(gid: group.ID, state: rolling.UpdateState | None) -> None:
        saved.append(state)

    def make() -> controller.Controller:
        return controller.Controller(resolver({"instance-fake": instances}),
                                     resolver({"flavor-fake": flavors}), clock=clock,
                                     rng=NoJitter(), on_state=on_state)

    first = make()
    try:
        await first.commit_group(spec(size=2), False, version="1")
        await clock.settle()
        old = {m.id for m in members(instances)}
        flavors.default_health = flavor.Health.UNKNOWN  # the update waits at its gate
        await first.commit_group(spec(size=2, note="v2"), False, version="2")
        await clock.advance(30)
    finally:
        await first.close()
    state = saved[-1]
    assert state is not None and state.versions is not None
    assert sorted(state.versions.values()) == ["1", "2"]
    left = old & {m.id for m in members(instances)}
    assert len(left) == 1  # one old member still to replace

    second = make()  # a restarted group plugin; the manager passes the state back
    try:
        await second.commit_group(spec(size=2, note="v2"), False, resume=state, version="2")
        flavors.default_health = flavor.Health.HEALTHY
        await clock.advance(60)
        status = await second.status(GID)
        assert not left & {m.id for m in members(instances)}
        assert f"replaced {left.pop()} (v1 → v2, rolling update)" in [
            a.message for a in status.actions]
    finally:
        await second.close()


def test_versions_noted_at_commits_keep_the_newest_and_are_bounded() -> None:
    versions = roster.noted({}, sha="a", version="1", saved={"z": "0"})
    assert versions == {"z": "0", "a": "1"}
    versions = roster.noted(versions, sha="b", version="2", saved={"a": "stale"})
    assert versions == {"z": "0", "a": "1", "b": "2"}  # what this plugin knows wins
    versions = roster.noted(versions, sha="a", version="3")  # a rollback to config a
    assert list(versions.items())[-1] == ("a", "3")
    assert roster.noted(versions, sha="b", version=None) == versions
    for n in range(40):
        versions = roster.noted(versions, sha=f"s{n}", version=str(n))
    assert len(versions) == roster.VERSIONS_KEPT and versions["s39"] == "39"
