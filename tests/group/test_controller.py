"""The Group interface of the controller: commit, validation, pretend, free, destroy, size."""

from typing import Any

import pytest

from infrakit import errors
from infrakit.group import controller, tags
from infrakit.spi import group
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

from .conftest import GID, members, shas, spec


async def test_a_new_group_is_managed_and_converges(ctl: controller.Controller,
                                                    clock: FakeClock,
                                                    instances: FakeInstancePlugin,
                                                    flavors: FakeFlavorPlugin) -> None:
    assert await ctl.commit_group(spec(size=3), False) == "Managing 3 instances"
    await clock.settle()
    found = await ctl.describe_group(GID)
    assert len(found.instances) == 3 and found.converged
    assert {m.tags["tier"] for m in found.instances} == {"web"}  # the flavor prepared them
    assert [index.sequence for _, index in flavors.prepared] == [0, 1, 2]
    assert {index.group for _, index in flavors.prepared} == {GID}


async def test_members_carry_the_v05_tags(clock: FakeClock, instances: FakeInstancePlugin,
                                          flavors: FakeFlavorPlugin) -> None:
    ctl = controller.Controller(resolver({"instance-file": instances}),
                                resolver({"flavor-vanilla": flavors}), clock=clock)
    sample = group.Spec(id=GID, properties={
        "Allocation": {"Size": 1},
        "Instance": {"Plugin": "instance-file", "Properties": {"Note": "v1"}},
        "Flavor": {"Plugin": "flavor-vanilla",
                   "Properties": {"Init": ["echo hello"], "Tags": {"tier": "web"}}}})
    try:
        await ctl.commit_group(sample, False)
        await clock.settle()
    finally:
        await ctl.close()
    (only,) = members(instances)
    assert only.tags == {tags.GROUP: GID, tags.CONFIG_SHA: "rsfonnrfmaykaiytaj26ud5ixjk7m4rd",
                         "tier": "web"}
    assert instances.specs[only.id].init == "echo hello"


def broken(**changes: Any) -> group.Spec:
    props = {**spec().properties, **changes}
    return group.Spec(id=GID, properties={k: v for k, v in props.items() if v is not None})


@pytest.mark.parametrize(("bad", "setup", "error", "message"), [
    (group.Spec(id=group.ID(""), properties=None), {}, errors.InvalidError,
     "Group ID must not be blank"),
    (broken(Instance={"Properties": {}}), {"flavor_invalid": True}, errors.InvalidError,
     "Properties.Instance.Plugin: required"),
    (broken(Allocation=None, Flavor={"Plugin": "nope"}), {}, errors.InvalidError,
     "Allocation must not be blank"),
    (broken(Allocation={"Size": 1, "LogicalIDs": ["a"]}, Flavor={"Plugin": "nope"}), {},
     errors.InvalidError, "Only one Allocation method may be used"),
    (broken(Flavor={"Plugin": "nope"}), {"instance_invalid": True}, errors.PluginNotFound,
     "no plugin named 'nope'"),
    (spec(), {"flavor_invalid": True, "instance_invalid": True}, errors.InvalidError,
     "flavor says no"),
    (broken(Instance={"Plugin": "nope"}), {}, errors.PluginNotFound, "no plugin named 'nope'"),
    (spec(), {"instance_invalid": True}, errors.InvalidError, "instance says no"),
])
async def test_commit_validates_in_the_original_order(
        ctl: controller.Controller, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin,
        bad: group.Spec, setup: dict[str, bool], error: type[Exception], message: str) -> None:
    flavors.invalid = "flavor says no" if setup.get("flavor_invalid") else None
    instances.invalid = "instance says no" if setup.get("instance_invalid") else None
    with pytest.raises(error) as caught:
        await ctl.commit_group(bad, False)
    assert str(caught.value) == message
    assert await ctl.inspect_groups() == []


async def test_pretend_changes_nothing_at_all(ctl: controller.Controller, clock: FakeClock,
                                              instances: FakeInstancePlugin) -> None:
    assert await ctl.commit_group(spec(size=2), True) == "Managing 2 instances"
    await clock.advance(60)
    assert await ctl.inspect_groups() == [] and instances.instances == {}
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    instances.add(tags={tags.GROUP: GID, tags.CONFIG_SHA: tags.BOOTSTRAP})
    calls = dict(instances.calls)
    text = await ctl.commit_group(spec(size=4, note="v2"), True)
    assert text == ("Performing a rolling update on 2 instances, then adding 2 instances to "
                    "increase the group size to 4")
    changed = {k for k in instances.calls if instances.calls[k] != calls.get(k)}
    assert changed == {"validate", "describe_instances"}  # it looked, and did nothing
    assert await ctl.inspect_groups() == [spec(size=2)]
    assert tags.BOOTSTRAP in shas(instances)  # not even adopted


@pytest.mark.parametrize(("second", "text"), [
    (spec(size=3), "Noop"),
    (spec(size=3, Update={"MaxSurge": 1}),
     "Adjusting the instance configuration, no restarts necessary"),
    (spec(size=3, note="v2"), "Performing a rolling update on 3 instances"),
    (spec(size=1), "Terminating 2 instances to reduce the group size to 1"),
    (spec(size=2, note="v2"), "Terminating 1 instances to reduce the group size to 2, then "
                              "performing a rolling update on 2 instances"),
    (spec(size=5), "Adding 2 instances to increase the group size to 5"),
    (spec(size=4, note="v2"), "Performing a rolling update on 3 instances, then adding 1 "
                              "instances to increase the group size to 4"),
])
async def test_a_commit_over_a_group_answers_its_plan(ctl: controller.Controller,
                                                      clock: FakeClock, second: group.Spec,
                                                      text: str) -> None:
    await ctl.commit_group(spec(size=3), False)
    await clock.settle()
    assert await ctl.commit_group(second, False) == text


async def test_inspect_returns_the_specs_as_committed(ctl: controller.Controller) -> None:
    committed = spec(size=2, Health={"Interval": "5s"})  # raw "5s", not the parsed 5.0
    await ctl.commit_group(committed, False)
    assert await ctl.inspect_groups() == [committed]


async def test_an_unknown_group_is_not_being_watched(ctl: controller.Controller) -> None:
    calls = [ctl.describe_group(GID), ctl.free_group(GID), ctl.destroy_group(GID),
             ctl.destroy_instances(GID, []), ctl.size(GID), ctl.set_size(GID, 1),
             ctl.pause(GID), ctl.resume(GID), ctl.abort(GID), ctl.wake(GID), ctl.status(GID)]
    for call in calls:
        with pytest.raises(errors.NotFoundError, match=r"^Group 'workers' is not being watched$"):
            await call


async def test_describe_is_not_converged_while_anything_is_in_flight(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    instances.provision_delay = 5.0
    await ctl.commit_group(spec(size=2), False)
    await clock.advance(4)
    assert not (await ctl.describe_group(GID)).converged
    await clock.advance(1)
    assert (await ctl.describe_group(GID)).converged
    instances.vanish(members(instances)[0].id)
    assert not (await ctl.describe_group(GID)).converged  # the listing moved since


async def test_describe_carries_the_status_with_reasons(ctl: controller.Controller,
                                                        clock: FakeClock) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    found = (await ctl.describe_group(GID)).to_wire()
    assert found["Status"]["Phase"] == "Converged"
    assert found["Status"]["Actions"][0]["Message"] == "created instance-000001 because count 0 < 2"


async def test_free_group_stops_supervision_and_leaves_instances(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    await ctl.free_group(GID)
    instances.vanish(members(instances)[0].id)
    await clock.advance(100)
    assert len(members(instances)) == 1 and await ctl.inspect_groups() == []


async def test_destroy_group_drains_and_destroys_every_member_first(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await ctl.commit_group(spec(size=3), False)
    await clock.settle()
    ids = [m.id for m in members(instances)]
    await ctl.destroy_group(GID)
    assert members(instances) == [] and sorted(flavors.drained) == ids
    assert await ctl.inspect_groups() == []
    await clock.advance(100)
    assert members(instances) == []


async def test_destroy_group_retries_what_it_could_not_drain(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    first = members(instances)[0].id
    flavors.fail_drains = {first}
    with pytest.raises(errors.TemporaryError, match=f"could not destroy {first}"):
        await ctl.destroy_group(GID)
    assert [m.id for m in members(instances)] == [first]
    assert (await ctl.status(GID)).phase == "Destroying"
    await clock.advance(100)
    assert [m.id for m in members(instances)] == [first]  # not recreated meanwhile
    flavors.fail_drains = False
    await ctl.destroy_group(GID)
    assert members(instances) == []


async def test_size_and_set_size(ctl: controller.Controller, clock: FakeClock,
                                 instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    assert await ctl.size(GID) == 2
    await ctl.set_size(GID, 4)
    await clock.settle()
    assert await ctl.size(GID) == 4 and len(members(instances)) == 4
    assert (await ctl.inspect_groups())[0].properties["Allocation"] == {"Size": 4}
    await ctl.set_size(GID, 0)
    await clock.settle()
    assert members(instances) == []


async def test_set_size_refuses_pets_and_negative_sizes(ctl: controller.Controller) -> None:
    await ctl.commit_group(spec(ids=["a", "b"]), False)
    assert await ctl.size(GID) == 2
    with pytest.raises(errors.InvalidError, match="allocates by LogicalIDs"):
        await ctl.set_size(GID, 3)
    with pytest.raises(errors.InvalidError, match="size must be 0 or more"):
        await ctl.set_size(GID, -1)


async def test_destroy_instances_removes_them_and_shrinks_the_group(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    await ctl.commit_group(spec(size=4), False)
    await clock.settle()
    doomed = [members(instances)[1].id, members(instances)[3].id]
    await ctl.destroy_instances(GID, doomed)
    await clock.advance(30)
    assert [m.id for m in members(instances)] == ["instance-000001", "instance-000003"]
    assert flavors.drained == doomed and await ctl.size(GID) == 2


async def test_destroy_instances_refuses_non_members(ctl: controller.Controller,
                                                     clock: FakeClock,
                                                     instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=1), False)
    await clock.settle()
    stranger = instances.add(tags={"other": "x"})
    with pytest.raises(errors.NotFoundError, match=f"not members of group 'workers': {stranger}"):
        await ctl.destroy_instances(GID, [members(instances)[0].id, stranger])
    assert len(instances.instances) == 2


async def test_wake_reconciles_before_the_next_poll(ctl: controller.Controller,
                                                    clock: FakeClock,
                                                    instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=2), False)
    await clock.settle()
    instances.vanish(members(instances)[0].id)
    await clock.advance(1)
    assert len(members(instances)) == 1  # the poll is 10s away
    await ctl.wake(GID)
    await clock.settle()
    assert len(members(instances)) == 2
    instances.vanish(members(instances)[0].id)
    await ctl.wake()  # every group
    await clock.settle()
    assert len(members(instances)) == 2


class Sloppy(FakeInstancePlugin):
    """An instance plugin that ignores the tags it is asked to filter by."""

    async def describe_instances(self, tags: dict[str, str], properties: bool = False) -> Any:
        return self.matching({})


async def test_instances_without_the_group_tag_are_never_destroyed(
        clock: FakeClock, flavors: FakeFlavorPlugin) -> None:
    sloppy = Sloppy(clock=clock)
    strangers = [sloppy.add(tags={}), sloppy.add(tags={tags.GROUP: "others"})]
    ctl = controller.Controller(resolver({"instance-fake": sloppy}),
                                resolver({"flavor-fake": flavors}), clock=clock)
    try:
        await ctl.commit_group(spec(size=1), False)
        await clock.settle()
        await ctl.set_size(GID, 0)
        await clock.advance(60)
        assert sorted(sloppy.instances) == strangers
        assert (await ctl.describe_group(GID)).instances == []
    finally:
        await ctl.close()


async def test_poll_interval_and_max_parallel_are_checked() -> None:
    with pytest.raises(errors.InvalidError, match="poll_interval"):
        controller.Controller(lambda n: None, lambda n: None, poll_interval=0)  # type: ignore
    with pytest.raises(errors.InvalidError, match="max_parallel"):
        controller.Controller(lambda n: None, lambda n: None, max_parallel=-1)  # type: ignore


async def test_a_steady_group_lists_its_members_once_per_poll(
        ctl: controller.Controller, clock: FakeClock, instances: FakeInstancePlugin) -> None:
    await ctl.commit_group(spec(size=3), False)
    await clock.settle()
    before = instances.calls["describe_instances"]
    await clock.advance(100)
    assert instances.calls["describe_instances"] - before == 10


async def test_max_parallel_bounds_operations_in_flight(clock: FakeClock,
                                                        flavors: FakeFlavorPlugin) -> None:
    slow = FakeInstancePlugin(clock=clock, provision_delay=1.0)
    ctl = controller.Controller(resolver({"instance-fake": slow}),
                                resolver({"flavor-fake": flavors}), clock=clock, max_parallel=2)
    try:
        await ctl.commit_group(spec(size=6), False)
        took = await clock.advance_until(lambda: len(members(slow)) == 6, step=0.5)
    finally:
        await ctl.close()
    assert took == 3.0


async def test_the_status_is_json(ctl: controller.Controller, clock: FakeClock) -> None:
    import json

    await ctl.commit_group(spec(size=1, note="v1"), False)
    await clock.settle()
    await ctl.commit_group(spec(size=1, note="v2"), False)
    await ctl.pause(GID)
    data = json.loads(json.dumps((await ctl.status(GID)).to_wire()))
    assert data["Phase"] == "Paused" and data["Update"]["Paused"] is True
    assert set(data) == {"ID", "Phase", "Reason", "Size", "Members", "Converged", "ConfigSHA",
                         "Update", "ProvisionFailures", "CrashLooping", "Counts", "Instances",
                         "MoreInstances", "Actions"}


async def test_set_size_past_max_size_is_refused_and_changes_nothing(
        ctl: controller.Controller) -> None:
    await ctl.commit_group(spec(size=2, MaxSize=3), False)
    with pytest.raises(errors.InvalidError, match=(
            r"^Properties\.Allocation\.Size: 4 members is more than this group's MaxSize of 3; "
            r"raise Properties\.MaxSize to allow it$")):
        await ctl.set_size(GID, 4)
    assert await ctl.size(GID) == 2
    await ctl.set_size(GID, 3)
    assert await ctl.size(GID) == 3


async def test_a_standalone_plugin_says_how_groups_are_kept_across_restarts(
        instances: FakeInstancePlugin, flavors: FakeFlavorPlugin) -> None:
    standalone = controller.Controller(resolver({"instance-fake": instances}),
                                       resolver({"flavor-fake": flavors}), standalone=True)
    calls = [standalone.describe_group(GID), standalone.free_group(GID),
             standalone.destroy_group(GID), standalone.destroy_instances(GID, []),
             standalone.size(GID), standalone.set_size(GID, 1), standalone.pause(GID),
             standalone.status(GID)]
    for call in calls:
        with pytest.raises(errors.NotFoundError, match=(
                r"^Group 'workers' is not being watched by this group plugin \(it keeps groups "
                r"only in memory; they are kept across restarts by a manager or `infrakit "
                r"up`\): commit it again, or run a manager$")):
            await call
