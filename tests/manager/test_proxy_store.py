"""A corrupt store: a clear error naming the file and the problem, the last good state
kept and supervised, nothing overwritten."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import pytest
from inprocess import GID, Board, Node, eventually, spec

from infrakit import errors
from infrakit.group import tags
from infrakit.manager import store_file, tenure
from infrakit.testing import FakeFlavorPlugin, FakeInstancePlugin

CORRUPTIONS: dict[str, tuple[Callable[[str], str], str]] = {
    "truncated": (lambda text: text[: len(text) // 2], "truncated JSON"),
    "bad JSON": (lambda text: text.replace('"Groups":', '"Groups" =', 1), "bad JSON"),
    "wrong shape": (lambda text: json.dumps({"Groups": {GID: {"Plugin": 7}}}),
                    "wrong shape: Groups.web.Plugin"),
}


@pytest.fixture(params=sorted(CORRUPTIONS))
def corruption(request: pytest.FixtureRequest) -> tuple[Callable[[str], str], str]:
    return CORRUPTIONS[request.param]


def members(instances: FakeInstancePlugin) -> int:
    return len(instances.matching({tags.GROUP: GID}))


async def test_a_store_corrupted_while_running_is_refused_and_left_as_it_is(
        node: Node, instances: FakeInstancePlugin,
        corruption: tuple[Callable[[str], str], str]) -> None:
    damage, problem = corruption
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    path = node.store.config_path
    bad = damage(path.read_text())
    path.write_text(bad)

    with pytest.raises(errors.InvalidError) as failure:
        await node.manager.commit_group(spec(size=3), False)
    assert f"corrupt store {path}: {problem}" in failure.value.message
    assert "refusing to overwrite it" in failure.value.message
    assert path.read_text() == bad
    assert await node.manager.size(GID) == 2  # still supervised, at the last good size
    await eventually(lambda: members(instances) == 2)


async def test_a_leader_regaining_leadership_over_a_corrupt_store_keeps_the_last_good_one(
        node: Node, instances: FakeInstancePlugin,
        corruption: tuple[Callable[[str], str], str]) -> None:
    damage, _ = corruption
    await node.lead()
    await node.manager.commit_group(spec(size=2), False)
    path = node.store.config_path
    bad = damage(path.read_text())
    path.write_text(bad)

    node.leadership.revoke()

    async def freed() -> bool:
        return await node.controller.inspect_groups() == []

    await eventually(freed)
    await node.lead()
    assert [s.id for s in await node.manager.inspect_groups()] == [GID]
    assert path.read_text() == bad


async def test_a_manager_that_never_read_a_good_store_says_why_it_cannot_take_over(
        tmp_path: pathlib.Path, instances: FakeInstancePlugin,
        corruption: tuple[Callable[[str], str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenure, "RETRY_FIRST", 0.05)
    damage, problem = corruption
    good = json.dumps({"Groups": {GID: {"Plugin": "group-stateless",
                                        "Properties": spec(size=1).to_wire()}}}, indent=2)
    path = tmp_path / "store" / store_file.CONFIG
    path.parent.mkdir()
    path.write_text(damage(good))
    one = Node("mgr-1", Board(), tmp_path / "store", instances=instances,
               flavors=FakeFlavorPlugin())
    await one.manager.start()
    try:
        one.leadership.grant()
        with pytest.raises(errors.TemporaryError) as failure:
            await one.manager.describe_group(GID)
        assert failure.value.message.startswith(
            "manager 'mgr-1' leads but is still taking over: cannot read the store; last "
            f"error: corrupt store {path}: {problem}")
        with pytest.raises(errors.TemporaryError):
            await one.manager.commit_group(spec(size=5), False)
        assert path.read_text() == damage(good)

        path.write_text(good)  # repaired by hand: the manager takes over
        await one.manager.wait_ready(5)
        await eventually(lambda: members(instances) == 1)
    finally:
        await one.close()
