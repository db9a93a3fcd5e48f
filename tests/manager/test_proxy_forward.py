"""Managers over RPC: a standby forwards any call to the leader and returns its answer;
with no leader it fails at once, saying who it asked; a hop never hangs or repeats."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from inprocess import GID, Board, Node, eventually, spec

from infrakit import errors
from infrakit.manager import forward, serve
from infrakit.rpc import client, discovery, server
from infrakit.testing import FakeFlavorPlugin, FakeInstancePlugin

WHERE = "the test's board"


class Pair:
    """Two managers, ``mgr-1`` and ``mgr-2``, served on sockets in one plugins dir."""

    def __init__(self, plugins_dir: pathlib.Path, board: Board, nodes: list[Node]) -> None:
        self.plugins = discovery.Plugins(plugins_dir, timeout=5.0)
        self.board = board
        self.nodes = nodes
        self.flavors = FakeFlavorPlugin()
        self.instances = FakeInstancePlugin()


@pytest.fixture
async def pair(plugins_dir: pathlib.Path, tmp_path: pathlib.Path) -> AsyncIterator[Pair]:
    board = Board()
    instances, flavors = FakeInstancePlugin(), FakeFlavorPlugin()
    nodes = [Node(name, board, tmp_path / "store", instances=instances, flavors=flavors)
             for name in ("mgr-1", "mgr-2")]
    both = Pair(plugins_dir, board, nodes)
    both.flavors, both.instances = flavors, instances
    async with contextlib.AsyncExitStack() as stack:
        for node in nodes:
            await stack.enter_async_context(serve.served(
                node.manager, where=WHERE, plugins_dir=plugins_dir, forward_timeout=0.5))
        try:
            yield both
        finally:
            await both.plugins.close()
            for node in nodes:
                await node.controller.close()


async def test_a_standby_forwards_a_commit_and_returns_the_leaders_answer(pair: Pair) -> None:
    await pair.nodes[0].lead()
    standby = pair.plugins.group("mgr-2")
    assert await standby.commit_group(spec(size=2), False) == "Managing 2 instances"
    assert [s.id for s in await pair.nodes[0].controller.inspect_groups()] == [GID]
    assert await pair.nodes[1].controller.inspect_groups() == []
    assert await standby.size(GID) == 2
    await eventually(lambda: len(pair.instances.instances) == 2)
    described = await standby.describe_group(GID)  # the leader's members, not the standby's
    assert sorted(m.id for m in described.instances) == sorted(pair.instances.instances)
    assert {m.tags["infrakit.group"] for m in described.instances} == {GID}
    assert (described.status["ID"], described.status["Size"]) == (GID, 2)


async def test_the_leaders_error_comes_back_as_the_same_error(pair: Pair) -> None:
    await pair.nodes[0].lead()
    pair.flavors.invalid = "Properties.Init: expected a list"
    with pytest.raises(errors.InvalidError, match=r"Properties\.Init: expected a list"):
        await pair.plugins.group("mgr-2").commit_group(spec(), False)
    with pytest.raises(errors.NotFoundError, match="Group 'nope' is not being watched"):
        await pair.plugins.group("mgr-2").describe_group("nope")


async def test_each_manager_answers_is_leader_for_itself(pair: Pair) -> None:
    await pair.nodes[1].lead()
    assert [await pair.plugins.manager(n).is_leader() for n in ("mgr-1", "mgr-2")] == \
        [False, True]


async def test_with_no_leader_a_call_fails_at_once_saying_who_was_asked(pair: Pair) -> None:
    started = time.monotonic()
    with pytest.raises(errors.NotLeaderError) as failure:
        await pair.plugins.group("mgr-1").commit_group(spec(), False)
    assert time.monotonic() - started < 1.0
    message = failure.value.message
    assert message.startswith("no leader: Group.CommitGroup reached manager 'mgr-1', which "
                              f"does not lead, and {WHERE} names no leader (none since ")
    assert message.endswith("); retry once one is elected")


async def test_a_leader_without_a_socket_is_reported(pair: Pair) -> None:
    pair.board.leader = "mgr-9"
    with pytest.raises(errors.NotLeaderError, match="'mgr-9', has no socket in"):
        await pair.plugins.group("mgr-1").inspect_groups()


async def test_a_forward_to_a_leader_that_hangs_times_out(pair: Pair,
                                                          plugins_dir: pathlib.Path) -> None:
    released = asyncio.Event()

    async def hang(params: dict[str, Any]) -> Any:
        await released.wait()

    pair.board.leader = "mgr-h"
    async with server.Server("mgr-h", plugins_dir=plugins_dir,
                             extra_methods={forward.METHOD: hang}):
        started = time.monotonic()
        with pytest.raises(errors.CallTimeout, match="the leader 'mgr-h' did not answer "
                                                     r"Group.DescribeGroup .* within 0.5s"):
            await pair.plugins.group("mgr-1").describe_group(GID)
        assert time.monotonic() - started < 1.5
        released.set()


async def test_a_forwarded_call_is_not_forwarded_again(pair: Pair) -> None:
    await pair.nodes[0].lead()
    pair.nodes[0].leadership.revoke()
    pair.board.views = {"mgr-2": "mgr-1", "mgr-1": "mgr-2"}  # views lag, each names the other
    with pytest.raises(errors.NotLeaderError, match="forwarded by mgr-2 to manager 'mgr-1', "
                                                    "which does not lead"):
        await pair.plugins.group("mgr-2").inspect_groups()


async def test_a_manager_named_leader_takes_a_forwarded_call_once_it_notices(
        pair: Pair) -> None:
    pair.board.leader = "mgr-1"  # the leader file names mgr-1; it has not polled yet
    call = asyncio.create_task(pair.plugins.group("mgr-2").inspect_groups())
    await asyncio.sleep(0.1)
    assert not call.done()
    await pair.nodes[0].lead()
    assert await call == []


async def test_manager_forward_refuses_local_and_unknown_methods(pair: Pair,
                                                                plugins_dir: pathlib.Path) -> None:
    await pair.nodes[0].lead()
    rpc = client.Client(plugins_dir / "mgr-1")
    try:
        for method in ("Manager.IsLeader", "Group.Nothing"):
            with pytest.raises(errors.InvalidError, match=f"'{method}' cannot be forwarded"):
                await rpc.call(forward.METHOD, {"Method": method, "Params": {}})
    finally:
        await rpc.close()


async def test_metadata_and_leader_info_are_answered_by_each_manager(pair: Pair) -> None:
    await pair.nodes[0].lead()
    await pair.plugins.group("mgr-2").commit_group(spec(size=2), False)
    tree = pair.plugins.metadata("mgr-2")
    assert await tree.list([]) == ["groups", "leader", "manager"]
    assert await tree.list(["groups"]) == [GID]
    assert await tree.get(["groups", GID, "Properties", "Allocation", "Size"]) == 2
    assert await tree.get(["manager"]) == {"Name": "mgr-2", "Leader": False,
                                           "Backend": "group-stateless"}
    assert (await tree.get(["leader"]))["Name"] == "mgr-1"
    assert await tree.get(["groups", "nope"]) is None
