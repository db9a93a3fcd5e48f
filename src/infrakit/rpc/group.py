"""The Group interface over RPC (0.1.0, 0.1.1 and our extensions): method table and proxy.

Extensions (ours, never needed by a v0.5 peer): ``Group.Pause``, ``Group.Resume``,
``Group.Abort`` (rolling-update control) and ``Group.Wake`` (a plugin tells the controller
early that something changed). They are served only when the implementation has them.
"""

from __future__ import annotations

from typing import Any

from infrakit import errors
from infrakit.rpc import dispatch, proxy
from infrakit.spi import group, instance

EXTENSIONS = {"Group.Pause": "pause", "Group.Resume": "resume", "Group.Abort": "abort"}
"""Extension method → implementation method, each taking the group ID."""


def interfaces(plugin: Any) -> list[Any]:
    """0.1.0 always; 0.1.1 too when the plugin has DestroyInstances/Size/SetSize."""
    found = [group.INTERFACE]
    if all(hasattr(plugin, name) for name in ("destroy_instances", "size", "set_size")):
        found.append(group.INTERFACE_1_1)
    return found


def methods(objects: dict[str, Any]) -> dispatch.Methods:
    """Server-side handlers. Group calls carry no Type: the default object serves them."""
    plugin = dispatch.pick(objects, "", interface=group.INTERFACE)

    async def commit(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.CommitRequest, params, method="Group.CommitGroup")
        # Extensions are passed only when sent: a plugin without them still commits.
        extensions = {key: value for key, value in (("resume", req.resume),
                                                    ("version", req.version))
                      if value is not None}
        details = await dispatch.invoke(plugin.commit_group, req.spec, req.pretend,
                                        **extensions)
        return group.CommitResponse(details=details)

    def by_id(attribute: str, method: str) -> dispatch.Handler:
        async def handler(params: dict[str, Any]) -> Any:
            req = dispatch.parse(group.IDRequest, params, method=method)
            await dispatch.invoke(getattr(plugin, attribute), req.id)
            return group.OKResponse()
        return handler

    async def describe(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.IDRequest, params, method="Group.DescribeGroup")
        description = await dispatch.invoke(plugin.describe_group, req.id)
        return group.DescribeResponse(description=description)

    async def inspect(params: dict[str, Any]) -> Any:
        specs = await dispatch.invoke(plugin.inspect_groups)
        return group.InspectResponse(groups=specs or None)

    table: dispatch.Methods = {
        "Group.CommitGroup": commit,
        "Group.FreeGroup": by_id("free_group", "Group.FreeGroup"),
        "Group.DestroyGroup": by_id("destroy_group", "Group.DestroyGroup"),
        "Group.DescribeGroup": describe,
        "Group.InspectGroups": inspect,
    }
    if group.INTERFACE_1_1 in interfaces(plugin):
        table.update(_methods_1_1(plugin))
    for method, attribute in EXTENSIONS.items():
        if hasattr(plugin, attribute):
            table[method] = by_id(attribute, method)
    if hasattr(plugin, "wake"):
        table["Group.Wake"] = _wake(plugin)
    return table


def _methods_1_1(plugin: Any) -> dispatch.Methods:
    async def destroy_instances(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.DestroyInstancesRequest, params,
                             method="Group.DestroyInstances")
        await dispatch.invoke(plugin.destroy_instances, req.id, req.instances)
        return group.OKResponse()

    async def size(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.IDRequest, params, method="Group.Size")
        value = await dispatch.invoke(plugin.size, req.id)
        return group.SizeResponse(id=req.id, size=value)

    async def set_size(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.SetSizeRequest, params, method="Group.SetSize")
        await dispatch.invoke(plugin.set_size, req.id, req.size)
        return group.OKResponse()

    return {"Group.DestroyInstances": destroy_instances, "Group.Size": size,
            "Group.SetSize": set_size}


def _wake(plugin: Any) -> dispatch.Handler:
    async def wake(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.WakeRequest, params, method="Group.Wake")
        await dispatch.invoke(plugin.wake, req.id or None)
        return group.OKResponse()
    return wake


class Client(proxy.Proxy):
    """A ``group.Plugin`` (plus our extensions) whose methods run in a remote plugin."""

    interfaces = (group.INTERFACE_1_1, group.INTERFACE)

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None, version: str | None = None) -> str:
        """``resume`` (ext): a rolling update's saved state, as wire JSON; ``version``
        (ext): the spec's version label (left out when ``None``)."""
        answer = await self.call("Group.CommitGroup",
                                 group.CommitRequest(spec=spec, pretend=pretend, resume=resume,
                                                     version=version),
                                 group.CommitResponse)
        return answer.details

    async def free_group(self, gid: group.ID) -> None:
        await self.call("Group.FreeGroup", group.IDRequest(id=gid), group.OKResponse)

    async def destroy_group(self, gid: group.ID) -> None:
        await self.call("Group.DestroyGroup", group.IDRequest(id=gid), group.OKResponse)

    async def describe_group(self, gid: group.ID) -> group.Description:
        answer = await self.call("Group.DescribeGroup", group.IDRequest(id=gid),
                                 group.DescribeResponse)
        return answer.description

    async def inspect_groups(self) -> list[group.Spec]:
        answer = await self.call("Group.InspectGroups", group.Empty(), group.InspectResponse)
        return answer.groups or []

    async def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        await self._need_1_1("DestroyInstances")
        await self.call("Group.DestroyInstances",
                        group.DestroyInstancesRequest(id=gid, instances=instances),
                        group.OKResponse)

    async def size(self, gid: group.ID) -> int:
        await self._need_1_1("Size")
        answer = await self.call("Group.Size", group.IDRequest(id=gid), group.SizeResponse)
        return answer.size

    async def set_size(self, gid: group.ID, size: int) -> None:
        await self._need_1_1("SetSize")
        await self.call("Group.SetSize", group.SetSizeRequest(id=gid, size=size),
                        group.OKResponse)

    async def pause(self, gid: group.ID) -> None:
        await self.call("Group.Pause", group.IDRequest(id=gid), group.OKResponse)

    async def resume(self, gid: group.ID) -> None:
        await self.call("Group.Resume", group.IDRequest(id=gid), group.OKResponse)

    async def abort(self, gid: group.ID) -> None:
        await self.call("Group.Abort", group.IDRequest(id=gid), group.OKResponse)

    async def wake(self, gid: group.ID | None = None) -> None:
        await self.call("Group.Wake", group.WakeRequest(id=gid or ""), group.OKResponse)

    async def _need_1_1(self, what: str) -> None:
        if self.version is None:
            self.version = await self.rpc.require(*self.interfaces)
        if self.version != group.INTERFACE_1_1:
            raise errors.HandshakeError(
                f"plugin {self.rpc.name!r} speaks Group/0.1.0, which has no {what} "
                "(needs Group/0.1.1)", plugin=self.rpc.name)
