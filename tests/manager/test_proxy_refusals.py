"""What a manager refuses before it saves anything: a SetSize past the group's MaxSize (the
store must never hold a spec the backend refuses: every later take-over would fail), and a
Version from its caller (the manager numbers versions itself)."""

from __future__ import annotations

import json

import pytest
from inprocess import GID, Node, eventually, spec

from infrakit import errors
from infrakit.group import tags
from infrakit.manager import store_file
from infrakit.testing import FakeInstancePlugin


def stored_allocation(node: Node) -> object:
    doc = json.loads((node.store.directory / store_file.CONFIG).read_text())
    return doc["Groups"][GID]["Properties"]["Properties"]["Allocation"]


async def test_set_size_past_max_size_is_refused_and_nothing_is_saved(
        node: Node, instances: FakeInstancePlugin) -> None:
    await node.lead()
    await node.manager.commit_group(spec(size=2, MaxSize=3), False)
    with pytest.raises(errors.InvalidError, match=(
            r"^Properties\.Allocation\.Size: 4 members is more than this group's MaxSize "
            r"of 3; raise Properties\.MaxSize to allow it$")):
        await node.manager.set_size(GID, 4)
    assert stored_allocation(node) == {"Size": 2}
    assert [entry.version for entry in await node.manager.history(GID)] == [1]
    assert await node.manager.size(GID) == 2

    await node.manager.set_size(GID, 3)
    assert stored_allocation(node) == {"Size": 3}
    await eventually(lambda: len(instances.matching({tags.GROUP: GID})) == 3)


async def test_a_manager_refuses_a_version_from_its_caller(node: Node) -> None:
    await node.lead()
    with pytest.raises(errors.InvalidError, match=r"^Version: not accepted by a manager"):
        await node.manager.commit_group(spec(), False, version="7")
