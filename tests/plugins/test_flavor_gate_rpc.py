"""(ext) Flavor.CanRemove and Flavor.Order over real unix sockets: a flavor that has them, one
that does not (method not found, as from a v0.5 peer), and a v0.5 peer that knows neither:
both read as "allowed", "any order", and not asked again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from infrakit import errors
from infrakit.group import controller, tags
from infrakit.plugins.flavor import vanilla
from infrakit.rpc import discovery, server
from infrakit.rpc import flavor as flavor_rpc
from infrakit.spi import flavor, group, instance
from infrakit.testing import FakeGatekeeper, FakeInstancePlugin, resolver

QUORUM = "replacing zk-2 would leave 1 of 3 voting members"
CAN_REMOVE, ORDER = flavor_rpc.CAN_REMOVE, flavor_rpc.ORDER


def member(iid: str) -> instance.Description:
    return instance.Description(id=instance.ID(iid), tags={"infrakit.group": "zk"})


ZK = [member("zk-1"), member("zk-2"), member("zk-3")]


def can_remove_params(iid: str) -> dict[str, Any]:
    return {"Type": "", "Properties": {"Port": 2181},
            "Members": [m.to_wire() for m in ZK], "Instance": member(iid).to_wire()}


async def test_a_gatekeeper_answers_over_rpc(plugins_dir: pathlib.Path,
                                             plugins: discovery.Plugins) -> None:
    gatekeeper = FakeGatekeeper()
    gatekeeper.refuse["zk-2"] = QUORUM
    gatekeeper.replace_order = ["zk-3", "zk-1", "zk-2"]
    async with server.Server("flavor-zk", flavor=gatekeeper, plugins_dir=plugins_dir):
        remote = plugins.flavor("flavor-zk")
        assert await remote.can_remove({"Port": 2181}, ZK[1], ZK) == flavor.Removal(
            allowed=False, reason=QUORUM)
        assert await remote.can_remove({"Port": 2181}, ZK[0], ZK) == flavor.Removal()
        assert await remote.order({"Port": 2181}, ZK) == ["zk-3", "zk-1", "zk-2"]
        assert gatekeeper.asked[0] == ("zk-2", ["zk-1", "zk-2", "zk-3"])

        raw = plugins.client("flavor-zk")
        assert await raw.call("Flavor.CanRemove", can_remove_params("zk-2")) == {
            "Type": "", "Allowed": False, "Reason": QUORUM}
        assert await raw.call("Flavor.CanRemove", can_remove_params("zk-1")) == {
            "Type": "", "Allowed": True}
        assert await raw.call("Flavor.Order", {"Type": "", "Properties": None,
                                               "Instances": [m.to_wire() for m in ZK]}) == {
            "Type": "", "IDs": ["zk-3", "zk-1", "zk-2"]}


async def test_a_flavor_without_the_methods_allows_everything_in_any_order(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins) -> None:
    gatekeeper = FakeGatekeeper()
    gatekeeper.refuse["zk-2"] = QUORUM
    served = {"": vanilla.Plugin(), "zk": gatekeeper}  # two objects behind one socket
    async with server.Server("flavor-two", flavor=served, plugins_dir=plugins_dir):
        raw = plugins.client("flavor-two")
        missing = 'rpc: can\'t find method "{}"'
        with pytest.raises(errors.MethodNotFound, match=re.escape(missing.format(CAN_REMOVE))):
            await raw.call("Flavor.CanRemove", can_remove_params("zk-2"))
        with pytest.raises(errors.MethodNotFound, match=re.escape(missing.format(ORDER))):
            await raw.call("Flavor.Order", {"Instances": [m.to_wire() for m in ZK]})
        plain = plugins.flavor("flavor-two")
        for _ in range(2):
            assert await plain.can_remove({}, ZK[1], ZK) == flavor.Removal()
            assert await plain.order({}, ZK) == []
        # The other object of the same socket has the methods, and is still asked.
        zk = plugins.flavor("flavor-two/zk")
        assert await zk.can_remove({}, ZK[1], ZK) == flavor.Removal(allowed=False,
                                                                    reason=QUORUM)
        assert await zk.can_remove({}, ZK[1], ZK) == flavor.Removal(allowed=False,
                                                                    reason=QUORUM)
        assert gatekeeper.calls["can_remove"] == 2


async def test_errors_of_a_gatekeeper_reach_the_caller(plugins_dir: pathlib.Path,
                                                       plugins: discovery.Plugins) -> None:
    gatekeeper = FakeGatekeeper()
    async with server.Server("flavor-zk", flavor=gatekeeper, plugins_dir=plugins_dir):
        remote = plugins.flavor("flavor-zk")
        gatekeeper.fail = errors.ConflictError("zk-2 is syncing")
        with pytest.raises(errors.ConflictError, match="zk-2 is syncing"):
            await remote.can_remove({}, ZK[1], ZK)
        gatekeeper.fail = RuntimeError("a bug")
        with pytest.raises(errors.InfrakitError, match="a bug"):
            await remote.order({}, ZK)
        # A malformed request is refused naming the field; the plugin lives on.
        raw = plugins.client("flavor-zk")
        with pytest.raises(errors.InvalidError, match="Instance"):
            await raw.call("Flavor.CanRemove", {"Instance": 5})
        with pytest.raises(errors.InvalidError, match="Instances"):
            await raw.call("Flavor.Order", {"Instances": "zk-1"})
        gatekeeper.fail = None
        assert await remote.can_remove({}, ZK[0], ZK) == flavor.Removal()


# A v0.5 peer ---------------------------------------------------------------------------

Answer = Callable[[str, Any], dict[str, Any]]


def gorilla(method: str, request_id: Any) -> dict[str, Any]:
    """What v0.5's server (gorilla/rpc json2) answers to a method it does not have."""
    return {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": -32000, "message": f'rpc: can\'t find method "{method}"'}}


def standard(method: str, request_id: Any) -> dict[str, Any]:
    """A JSON-RPC server that uses the standard code."""
    return {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": -32601, "message": f"no method {method}"}}


@contextlib.asynccontextmanager
async def old_peer(path: pathlib.Path, unknown: Answer,
                   seen: Counter[str]) -> AsyncIterator[None]:
    """A flavor plugin that knows only Flavor 0.1.0 as v0.5 has it, at ``path``."""
    async def handle(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        method, request_id = body["method"], body.get("id")
        seen[method] += 1
        if method == "Handshake.Implements":
            result: dict[str, Any] = {"APIs": [{"Name": "Flavor", "Version": "0.1.0"}]}
        elif method == "Flavor.Healthy":
            result = {"Type": "", "Health": 1}
        else:
            return web.Response(text=json.dumps(unknown(method, request_id)),
                                content_type="text/plain")
        return web.Response(text=json.dumps({"jsonrpc": "2.0", "result": result,
                                             "id": request_id}), content_type="text/plain")

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.UnixSite(runner, str(path)).start()
        yield
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("unknown", [gorilla, standard])
async def test_a_v0_5_peer_is_read_as_allowed_and_not_asked_again(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins, unknown: Answer) -> None:
    seen: Counter[str] = Counter()
    async with old_peer(plugins_dir / "flavor-go", unknown, seen):
        remote = plugins.flavor("flavor-go")
        for _ in range(3):
            assert await remote.can_remove({}, ZK[1], ZK) == flavor.Removal()
            assert await remote.order({}, ZK) == []
        # A new proxy for the same plugin (the group makes one per reconcile) remembers too.
        again = plugins.flavor("flavor-go")
        assert await again.can_remove({}, ZK[0], ZK) == flavor.Removal()
        assert await again.healthy({}, ZK[0]) == flavor.Health.HEALTHY
        assert (seen["Flavor.CanRemove"], seen["Flavor.Order"]) == (1, 1)


def test_only_a_missing_method_counts_as_unknown() -> None:
    assert flavor_rpc.unknown_method(errors.MethodNotFound("no such method"))
    go = errors.GO_SERVER_ERROR  # v0.5's gorilla/rpc: one code for every failure
    assert flavor_rpc.unknown_method(errors.from_wire(go, 'rpc: can\'t find method "F.X"', None))
    assert flavor_rpc.unknown_method(errors.from_wire(go, 'rpc: can\'t find service "F"', None))
    assert not flavor_rpc.unknown_method(errors.from_wire(go, "zk-2 is syncing", None))
    assert not flavor_rpc.unknown_method(errors.Unavailable("cannot reach plugin"))


# The group plugin with a gatekeeper over RPC ----------------------------------------------


async def until(condition: Callable[[], Any], *, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, f"still not {what} after {timeout:g}s"
        await asyncio.sleep(0.05)


async def test_the_group_waits_on_a_gatekeeper_reached_over_rpc(
        plugins_dir: pathlib.Path, plugins: discovery.Plugins) -> None:
    gatekeeper, instances = FakeGatekeeper(), FakeInstancePlugin()
    gatekeeper.refuse["instance-000001"] = QUORUM
    spec_ = {"ID": "zk", "Properties": {
        "Allocation": {"Size": 3},
        "Instance": {"Plugin": "instance-fake", "Properties": {}},
        "Flavor": {"Plugin": "flavor-zk", "Properties": {"Port": 2181}}}}
    async with server.Server("flavor-zk", flavor=gatekeeper, plugins_dir=plugins_dir):
        ctl = controller.Controller(resolver({"instance-fake": instances}), plugins.flavor,
                                    poll_interval=0.1)
        try:
            await ctl.commit_group(group.Spec.from_wire(spec_), False)

            async def members(count: int) -> bool:
                return len(instances.matching({tags.GROUP: "zk"})) == count

            await until(lambda: members(3), what="3 members")
            await ctl.set_size(group.ID("zk"), 2)

            async def waiting() -> bool:
                return (await ctl.status(group.ID("zk"))).waiting == {
                    "instance-000001": QUORUM}

            await until(waiting, what="waiting on instance-000001")
            assert "instance-000001" in instances.instances
            described = (await ctl.describe_group(group.ID("zk"))).status
            assert described["Reason"].endswith(f"waiting: {QUORUM}")
            assert gatekeeper.asked[0][1] == ["instance-000001", "instance-000002",
                                              "instance-000003"]

            del gatekeeper.refuse["instance-000001"]
            await until(lambda: members(2), what="scaled in to 2")
            assert "instance-000001" not in instances.instances
        finally:
            await ctl.close()
