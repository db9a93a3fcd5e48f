"""Every method of every interface, through our async proxies and our server, on a real socket."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
from rpc_helpers import HYGIENE

from infrakit import errors
from infrakit.rpc import discovery, server
from infrakit.spi import flavor, group, instance

pytestmark = HYGIENE


async def test_instance_methods_round_trip(served: server.Server,
                                           plugins: discovery.Plugins) -> None:
    remote = plugins.instance("mem")
    await remote.validate({"Note": "v1"})
    spec = instance.Spec(properties={"Note": "v1"}, tags={"tier": "web", "group": "a"},
                         init="echo hi", logical_id=instance.LogicalID("db-1"),
                         attachments=[instance.Attachment(id="vol-1", type="ebs")])
    new = await remote.provision(spec)
    assert new == "instance-1"
    await remote.label(instance.ID("instance-1"), {"owner": "ops"})
    found = await remote.describe_instances({"tier": "web"}, properties=True)
    assert found == [instance.Description(
        id=instance.ID("instance-1"), logical_id=instance.LogicalID("db-1"),
        tags={"tier": "web", "group": "a", "owner": "ops"}, properties={"Note": "v1"})]
    assert (await remote.describe_instances({"tier": "web"}))[0].properties is None
    await remote.destroy(instance.ID("instance-1"))
    assert await remote.describe_instances({}) == []


@pytest.mark.parametrize(("tags", "expected"), [
    ({}, {"a", "b", "c"}),
    ({"tier": "web"}, {"a", "b"}),
    ({"tier": "web", "zone": "1"}, {"a"}),
    ({"tier": "web", "zone": "3"}, set()),
])
async def test_describe_matches_all_given_tags(served: server.Server, plugins: discovery.Plugins,
                                               tags: dict[str, str], expected: set[str]) -> None:
    remote = plugins.instance("mem")
    members = {"a": {"tier": "web", "zone": "1"}, "b": {"tier": "web", "zone": "2"},
               "c": {"tier": "db", "zone": "1"}}
    names = {}
    for name, member_tags in members.items():
        names[await remote.provision(instance.Spec(tags=member_tags))] = name
    found = await remote.describe_instances(tags)
    assert {names[d.id] for d in found} == expected


async def test_subtype_addresses_its_own_object(served: server.Server,
                                                plugins: discovery.Plugins) -> None:
    await plugins.instance("mem/east").provision(instance.Spec(tags={"zone": "east"}))
    assert len(await plugins.instance("mem/east").describe_instances({})) == 1
    assert await plugins.instance("mem").describe_instances({}) == []
    with pytest.raises(errors.NotFoundError, match="no Instance object of type 'west'"):
        await plugins.instance("mem/west").describe_instances({})


async def test_handshake_lists_interfaces_and_types(served: server.Server,
                                                    plugins: discovery.Plugins) -> None:
    client = plugins.client("mem")
    assert await client.call("Handshake.Implements", {}) == {
        "APIs": [{"Name": "Instance", "Version": "0.5.0"}]}
    assert await client.call("Plugin.Implements", {}) == {
        "APIs": [{"Name": "Instance", "Version": "0.5.0"}]}
    assert await client.call("Handshake.Types", {}) == {"Types": {"Instance/0.5.0": [".", "east"]}}


async def test_proxy_refuses_a_plugin_without_the_interface(
    served: server.Server, plugins: discovery.Plugins
) -> None:
    with pytest.raises(errors.HandshakeError,
                       match=r"plugin 'mem' does not implement Flavor/0.1.0; "
                             r"it offers Instance/0.5.0"):
        await plugins.flavor("mem").validate({}, flavor.AllocationMethod(size=1))


async def test_remote_errors_come_back_as_our_types(served: server.Server,
                                                    plugins: discovery.Plugins) -> None:
    with pytest.raises(errors.NotFoundError, match="instance 'nope' not found"):
        await plugins.instance("mem").destroy(instance.ID("nope"))
    with pytest.raises(errors.InvalidError, match="Properties: expected an object"):
        await plugins.instance("mem").validate([1])


async def test_missing_plugin_is_named(plugins: discovery.Plugins) -> None:
    with pytest.raises(errors.PluginNotFound, match="plugin 'ghost' not found"):
        plugins.instance("ghost")


class Vanillaish:
    """An async flavor: exercises async implementation methods."""

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        if allocation.size > 10:
            raise errors.InvalidError("Allocation.Size: at most 10")

    async def prepare(self, properties: Any, spec: instance.Spec,
                      allocation: flavor.AllocationMethod, index: flavor.Index) -> instance.Spec:
        return spec.model_copy(update={"init": f"{properties['Init']} #{index.sequence}"})

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return flavor.Health.UNHEALTHY if inst.tags.get("bad") else flavor.Health.HEALTHY

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        self.drained = inst.id


async def test_flavor_methods_round_trip(plugins_dir: pathlib.Path,
                                         plugins: discovery.Plugins) -> None:
    local = Vanillaish()
    async with server.Server("vanilla", flavor=local, plugins_dir=plugins_dir):
        remote = plugins.flavor("vanilla")
        await remote.validate({}, flavor.AllocationMethod(size=3))
        with pytest.raises(errors.InvalidError, match="at most 10"):
            await remote.validate({}, flavor.AllocationMethod(size=11))
        spec = await remote.prepare({"Init": "run"}, instance.Spec(),
                                    flavor.AllocationMethod(size=1),
                                    flavor.Index(group="g", sequence=7))
        assert spec.init == "run #7"
        sick = instance.Description(id=instance.ID("i-1"), tags={"bad": "1"})
        assert await remote.healthy({}, sick) is flavor.Health.UNHEALTHY
        assert await remote.healthy({}, sick.model_copy(update={"tags": {}})) == 1
        await remote.drain({}, sick)
        assert local.drained == "i-1"


class Groups:
    """A group plugin with the 0.1.1 methods and our extensions, recording calls."""

    def __init__(self) -> None:
        self.specs: dict[str, group.Spec] = {}
        self.sizes: dict[str, int] = {}
        self.calls: list[tuple[str, Any]] = []

    async def commit_group(self, spec: group.Spec, pretend: bool) -> str:
        if not pretend:
            self.specs[spec.id] = spec
        return "Managing 3 instances"

    async def free_group(self, gid: group.ID) -> None:
        self.calls.append(("free", gid))

    async def describe_group(self, gid: group.ID) -> group.Description:
        return group.Description(instances=[instance.Description(id=instance.ID("i-1"))],
                                 converged=True, status={"Phase": "Converged"})

    async def destroy_group(self, gid: group.ID) -> None:
        self.calls.append(("destroy", gid))

    async def inspect_groups(self) -> list[group.Spec]:
        return list(self.specs.values())

    async def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        self.calls.append(("destroy_instances", instances))

    async def size(self, gid: group.ID) -> int:
        return self.sizes.get(gid, 0)

    async def set_size(self, gid: group.ID, size: int) -> None:
        self.sizes[gid] = size

    async def pause(self, gid: group.ID) -> None:
        self.calls.append(("pause", gid))

    async def resume(self, gid: group.ID) -> None:
        self.calls.append(("resume", gid))

    async def abort(self, gid: group.ID) -> None:
        self.calls.append(("abort", gid))

    async def wake(self, gid: group.ID | None) -> None:
        self.calls.append(("wake", gid))


async def test_group_methods_round_trip(plugins_dir: pathlib.Path,
                                        plugins: discovery.Plugins) -> None:
    local = Groups()
    async with server.Server("group", group=local, plugins_dir=plugins_dir):
        remote = plugins.group("group")
        assert await remote.inspect_groups() == []
        spec = group.Spec(id=group.ID("workers"), properties={"Allocation": {"Size": 3}})
        assert await remote.commit_group(spec, pretend=True) == "Managing 3 instances"
        assert await remote.inspect_groups() == []
        await remote.commit_group(spec, pretend=False)
        assert await remote.inspect_groups() == [spec]
        described = await remote.describe_group(group.ID("workers"))
        assert described.converged and described.status == {"Phase": "Converged"}
        await remote.set_size(group.ID("workers"), 5)
        assert await remote.size(group.ID("workers")) == 5
        gid = group.ID("workers")
        await remote.destroy_instances(gid, [instance.ID("i-1")])
        for verb in (remote.free_group, remote.destroy_group, remote.pause, remote.resume,
                     remote.abort, remote.wake):
            await verb(gid)
        assert [name for name, _ in local.calls] == [
            "destroy_instances", "free", "destroy", "pause", "resume", "abort", "wake"]
        types = await plugins.client("group").call("Handshake.Types", {})
        assert types == {"Types": {"Group/0.1.0": ["."], "Group/0.1.1": ["."]}}


class OldGroups:
    """A v0.5 group plugin: no 0.1.1 methods."""

    async def inspect_groups(self) -> list[group.Spec]:
        return []


async def test_group_0_1_1_calls_are_refused_on_a_0_1_0_plugin(
    plugins_dir: pathlib.Path, plugins: discovery.Plugins
) -> None:
    async with server.Server("old", group=OldGroups(), plugins_dir=plugins_dir):
        remote = plugins.group("old")
        assert await remote.inspect_groups() == []
        with pytest.raises(errors.HandshakeError, match=r"needs Group/0\.1\.1"):
            await remote.size(group.ID("g"))


class Leader:
    def is_leader(self) -> bool:
        return True

    def list(self, path: list[str]) -> list[str]:
        return ["groups"] if not path else []

    def get(self, path: list[str]) -> Any:
        return {"count": 2} if path == ["groups", "workers"] else None


async def test_manager_and_metadata_round_trip(plugins_dir: pathlib.Path,
                                               plugins: discovery.Plugins) -> None:
    leader = Leader()
    async with server.Server("mgr", manager=leader, metadata=leader, plugins_dir=plugins_dir):
        assert await plugins.manager("mgr").is_leader() is True
        assert await plugins.metadata("mgr").list([]) == ["groups"]
        assert await plugins.metadata("mgr").get(["groups", "workers"]) == {"count": 2}
        raw_answer = await plugins.client("mgr").call("Metadata.Get", {"Path": "groups/workers"})
        assert raw_answer == {"Value": {"count": 2}}
