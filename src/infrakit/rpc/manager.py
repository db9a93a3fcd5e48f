"""The Manager interface over RPC: ``Manager.IsLeader``."""

from __future__ import annotations

from typing import Any

from infrakit.rpc import dispatch, proxy
from infrakit.spi import group, manager


def methods(objects: dict[str, Any]) -> dispatch.Methods:
    plugin = dispatch.pick(objects, "", interface=manager.INTERFACE)

    async def is_leader(params: dict[str, Any]) -> Any:
        leader = await dispatch.invoke(plugin.is_leader)
        return manager.IsLeaderResponse(leader=bool(leader))

    return {"Manager.IsLeader": is_leader}


class Client(proxy.Proxy):
    """A ``manager.Plugin`` whose methods run in a remote manager."""

    interfaces = (manager.INTERFACE,)

    async def is_leader(self) -> bool:
        answer = await self.call("Manager.IsLeader", group.Empty(), manager.IsLeaderResponse)
        return answer.leader
