"""The manager in-process: every change saved (fenced) before the backend acts, take-over
with saved update states, free on loss, history and rollback."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Awaitable, Callable

import pytest
from inprocess import GID, UNKNOWN, Board, Node, eventually, spec, update_of

from infrakit import errors
from infrakit.group import tags
from infrakit.manager import store, store_file
from infrakit.spi import group
from infrakit.testing import FakeFlavorPlugin, FakeInstancePlugin


def stored(store_dir: pathlib.Path) -> dict[str, object]:
    doc = json.loads((store_dir / store_file.CONFIG).read_text())
    groups: dict[str, object] = doc["Groups"]
    return groups


def stored_size(store_dir: pathlib.Path) -> int:
    entry = stored(store_dir)[GID]
    assert isinstance(entry, dict)
    size: int = entry["Properties"]["Properties"]["Allocation"]["Size"]
    return size


def members(instances: FakeInstancePlugin) -> list[str]:
    return [m.id for m in instances.matching({tags.GROUP: GID})]


async def test_a_commit_is_saved_before_the_backend_acts_on_it(
        node: Node, store_dir: pathlib.Path) -> None:
    await node.lead()
    assert await node.manager.commit_group(spec(size=2), False) == "Managing 2 instances"
    [(committed, _, store_then)] = node.backend.commits
    assert committed.id == GID
    entry = json.loads(store_then)["Groups"][GID]
    assert entry == {"Plugin": "group-stateless", "Properties": spec(size=2).to_wire()}


async def test_a_pretend_commit_saves_nothing(node: Node, store_dir: pathlib.Path) -> None:
    await node.lead()
    assert await node.manager.commit_group(spec(size=2), True) == "Managing 2 instances"
    assert not (store_dir / store_file.CONFIG).exists() and node.backend.commits == []


async def test_a_spec_the_backend_rejects_is_not_saved(node: Node, store_dir: pathlib.Path,
                                                       flavors: FakeFlavorPlugin) -> None:
    await node.lead()
    flavors.invalid = "Properties.Init: expected a list"
    with pytest.raises(errors.InvalidError, match="Init"):
        await node.manager.commit_group(spec(), False)
    assert not (store_dir / store_file.CONFIG).exists()


@pytest.mark.parametrize("call", ["commit", "describe", "free", "set_size", "history"])
async def test_a_manager_that_does_not_lead_refuses_every_call(node: Node, call: str) -> None:
    calls = {"commit": lambda: node.manager.commit_group(spec(), False),
             "describe": lambda: node.manager.describe_group(GID),
             "free": lambda: node.manager.free_group(GID),
             "set_size": lambda: node.manager.set_size(GID, 3),
             "history": lambda: node.manager.history(GID)}
    with pytest.raises(errors.NotLeaderError, match="'mgr-1' does not lead"):
        await calls[call]()


async def test_destroy_instances_and_set_size_change_the_stored_size(
        node: Node, store_dir: pathlib.Path, instances: FakeInstancePlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=3), False)
    await eventually(lambda: len(members(instances)) == 3)
    await node.manager.destroy_instances(GID, [members(instances)[0]])
    assert stored_size(store_dir) == 2 and await node.manager.size(GID) == 2
    await node.manager.set_size(GID, 4)
    assert stored_size(store_dir) == 4
    await eventually(lambda: len(members(instances)) == 4)


async def test_destroying_a_stranger_changes_nothing(node: Node, store_dir: pathlib.Path,
                                                     instances: FakeInstancePlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    with pytest.raises(errors.NotFoundError, match="not members of group 'web': nobody"):
        await node.manager.destroy_instances(GID, ["nobody"])
    assert stored_size(store_dir) == 2


async def test_free_forgets_the_group_and_leaves_its_instances(
        node: Node, store_dir: pathlib.Path, instances: FakeInstancePlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    await eventually(lambda: len(members(instances)) == 2)
    await node.manager.free_group(GID)
    assert stored(store_dir) == {} and await node.backend.inspect_groups() == []
    assert len(members(instances)) == 2


async def test_a_refused_destroy_keeps_the_group_in_the_store(
        node: Node, store_dir: pathlib.Path, instances: FakeInstancePlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=1), False)
    await eventually(lambda: len(members(instances)) == 1)
    await instances.label(members(instances)[0], {"infrakit.protect": "true"})
    with pytest.raises(errors.ConflictError, match="protected"):
        await node.manager.destroy_group(GID)
    assert GID in stored(store_dir)
    await instances.label(members(instances)[0], {"infrakit.protect": "false"})
    await node.manager.destroy_group(GID)
    assert stored(store_dir) == {} and members(instances) == []


def doc_with(committed: group.Spec) -> store.Document:
    return store.Document().with_group(committed, plugin_name="group-stateless")


async def test_a_destroy_record_left_for_a_group_committed_again_is_not_its_update_state(
        node: Node, store_dir: pathlib.Path) -> None:
    """A group destroyed and committed again before the destroy's record was cleared: the
    next take-over commits it without resuming anything and clears the record."""
    before = store_file.FileStore(store_dir)
    doc = doc_with(spec(size=1))
    await before.save(doc)
    await before.save_state(GID, store.destroying(doc.groups[GID]))
    await node.lead()
    [(committed, resume, _)] = node.backend.commits
    assert (committed, resume) == (spec(size=1), None)
    assert await before.load_state(GID) is None


async def test_a_take_over_puts_back_a_group_whose_destroy_the_backend_refuses(
        node: Node, store_dir: pathlib.Path, instances: FakeInstancePlugin) -> None:
    """The previous leader took the group out of the store to destroy it and died; a member
    is protected, so the backend refuses: the group is back in the store and supervised as
    it was, nothing destroyed or provisioned."""
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    await eventually(lambda: len(members(instances)) == 2)
    await instances.label(members(instances)[0], {"infrakit.protect": "true"})
    node.leadership.revoke()
    await eventually(lambda: _not(node.backend.inspect_groups()))
    before = store_file.FileStore(store_dir)
    entry = (await before.load()).groups[GID]
    await before.save_state(GID, store.destroying(entry))
    await before.save(store.Document())
    provisioned = instances.calls["provision"]

    await node.lead()
    async def kept() -> bool:
        return GID in stored(store_dir) and await before.load_state(GID) is None
    await eventually(kept)
    assert stored(store_dir)[GID] == entry.to_wire()
    assert [s.id for s in await node.backend.inspect_groups()] == [GID]
    assert (await node.backend.inspect_groups())[0] == spec(size=2)
    assert len(members(instances)) == 2 and instances.calls["provision"] == provisioned


async def _not(value: Awaitable[object]) -> bool:
    return not await value


async def test_a_pause_is_saved_at_once_and_a_resume_too(
        node: Node, store_dir: pathlib.Path, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    node.manager.state_poll = 3600  # only the calls themselves save the state here
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    await eventually(lambda: len(members(instances)) == 2)
    flavors.default_health = UNKNOWN  # new members never pass the gate: the update stays
    await node.manager.commit_group(spec(size=2, note="v2"), False)
    await node.manager.pause(GID)
    saved = update_of(await node.store.load_state(GID))
    assert saved is not None and saved.paused and saved.reason == "paused by request"
    await node.manager.resume(GID)
    saved = update_of(await node.store.load_state(GID))
    assert saved is not None and not saved.paused


async def test_control_without_an_update_in_flight_saves_nothing(node: Node) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=1), False)
    with pytest.raises(errors.ConflictError, match="no rolling update in flight"):
        await node.manager.pause(GID)
    assert await node.store.load_state(GID) is None


async def test_the_update_state_is_saved_as_it_changes(
        node: Node, instances: FakeInstancePlugin, flavors: FakeFlavorPlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    await eventually(lambda: len(members(instances)) == 2)
    flavors.default_health = UNKNOWN
    await node.manager.commit_group(spec(size=2, note="v2"), False)

    async def saved() -> bool:
        return update_of(await node.store.load_state(GID)) is not None

    await eventually(saved)


async def test_a_new_leader_commits_every_stored_group_with_its_saved_update(
        store_dir: pathlib.Path, instances: FakeInstancePlugin,
        flavors: FakeFlavorPlugin) -> None:
    board = Board()
    first = Node("mgr-1", board, store_dir, instances=instances, flavors=flavors)
    second = Node("mgr-2", board, store_dir, instances=instances, flavors=flavors)
    for each in (first, second):
        await each.manager.start()
    try:
        await first.lead()
        await first.manager.commit_group(spec(size=2), False)
        await eventually(lambda: len(members(instances)) == 2)
        flavors.default_health = UNKNOWN
        await first.manager.commit_group(spec(size=2, note="v2"), False)
        await first.manager.pause(GID)
        first.leadership.revoke()
        await eventually(_empty(first))
        assert len(members(instances)) == 2  # freed, not destroyed

        await second.lead()
        [(committed, resume, _)] = second.backend.commits
        assert committed == spec(size=2, note="v2")
        saved = update_of(resume)
        assert saved is not None and saved.paused
        status = await second.controller.status(GID)
        assert status.phase == "Paused"
    finally:
        for each in (first, second):
            await each.close()


def _empty(node: Node) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await node.backend.inspect_groups() == []
    return check


async def test_losing_leadership_frees_the_backend_and_stops_every_call(
        node: Node, instances: FakeInstancePlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    await eventually(lambda: len(members(instances)) == 2)
    node.leadership.revoke()
    with pytest.raises(errors.NotLeaderError):
        await node.manager.commit_group(spec(size=3), False)
    await eventually(_empty(node))
    assert len(members(instances)) == 2


async def test_history_keeps_the_last_versions_and_rollback_commits_one_again(
        node: Node, store_dir: pathlib.Path, instances: FakeInstancePlugin) -> None:
    await node.lead()
    for size in (1, 2, 3, 4):
        await node.manager.commit_group(spec(size=size), False)
    entries = await node.manager.history(GID)
    assert [e.version for e in entries] == [2, 3, 4]  # the store keeps 3
    assert await node.manager.rollback(GID) == (3, "Terminating 1 instances to reduce the "
                                                   "group size to 3")
    assert stored_size(store_dir) == 3
    assert (await node.manager.rollback(GID, 4))[0] == 4
    assert [e.version for e in await node.manager.history(GID)] == [4, 5, 6]
    with pytest.raises(errors.NotFoundError, match=r"no version 1 \(versions kept: 4, 5, 6\)"):
        await node.manager.rollback(GID, 1)


async def test_rollback_needs_an_earlier_version(node: Node) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=1), False)
    with pytest.raises(errors.NotFoundError, match="no earlier version"):
        await node.manager.rollback(GID)
    with pytest.raises(errors.NotFoundError, match="no history"):
        await node.manager.rollback("other")
