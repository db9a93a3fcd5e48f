"""Pets: one member per logical ID, created with it; unknown IDs removed; duplicates reduced;
a changed ID list adds the new members first, then removes the old ones one at a time."""

from infrakit.group import controller, tags
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin

from .conftest import GID, members, spec


def lids(instances: FakeInstancePlugin) -> list[str | None]:
    return sorted(str(m.logical_id) for m in members(instances))


async def test_each_logical_id_gets_one_member_created_with_it(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    assert await ctl.commit_group(spec(ids=["a", "b", "c"]), False) == "Managing 3 instances"
    await clock.settle()
    assert lids(instances) == ["a", "b", "c"]
    assert sorted(str(s.logical_id) for s in instances.specs.values()) == ["a", "b", "c"]
    assert (await ctl.describe_group(GID)).converged


async def test_a_vanished_pet_comes_back_with_its_logical_id(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(ids=["a", "b"]), False)
    await clock.settle()
    instances.vanish(next(m.id for m in members(instances) if m.logical_id == "b"))
    await clock.advance(10)
    assert lids(instances) == ["a", "b"]


async def test_members_with_unknown_logical_ids_are_removed(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    sha = "whatever"
    strangers = [instances.add(tags={tags.GROUP: GID, tags.CONFIG_SHA: sha}, logical_id="z"),
                 instances.add(tags={tags.GROUP: GID, tags.CONFIG_SHA: sha})]
    await ctl.commit_group(spec(ids=["a"]), False)
    await clock.advance(30)
    assert lids(instances) == ["a"]
    assert not set(strangers) & set(instances.instances)


async def test_duplicates_of_a_logical_id_are_reduced_to_one(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(ids=["a", "b"]), False)
    await clock.settle()
    current = tags.config_sha(members(instances)[0])
    instances.add(tags={tags.GROUP: GID, tags.CONFIG_SHA: current}, logical_id="a")
    await clock.advance(10)
    assert lids(instances) == ["a", "b"]
    assert (await ctl.describe_group(GID)).converged


async def test_a_changed_id_list_adds_first_then_removes_one_at_a_time(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await ctl.commit_group(spec(ids=["a", "b", "c"]), False)
    await clock.settle()
    flavors.drain_delay = 25.0  # longer than a poll: a second removal would overlap
    instances.provision_delay = 5.0
    instances.history.clear()
    text = await ctl.commit_group(spec(ids=["d", "e", "f"]), False)
    assert text == ("Adding 3 instances for new logical IDs, then terminating 3 instances whose "
                    "logical IDs were removed")
    await clock.advance(120)
    assert lids(instances) == ["d", "e", "f"]
    assert [event for event, _ in instances.history] == ["provision"] * 3 + ["destroy"] * 3
    assert flavors.most_draining == 1


async def test_destroy_instances_on_a_pet_recreates_its_logical_id(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(ids=["a", "b"]), False)
    await clock.settle()
    doomed = next(m.id for m in members(instances) if m.logical_id == "a")
    await ctl.destroy_instances(GID, [doomed])
    await clock.settle()
    assert doomed not in instances.instances and lids(instances) == ["a", "b"]
    assert await ctl.size(GID) == 2
