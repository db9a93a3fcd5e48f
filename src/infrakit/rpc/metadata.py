"""The Metadata interface over RPC: ``Metadata.List`` and ``Metadata.Get``."""

from __future__ import annotations

import builtins
from typing import Any

from infrakit.rpc import dispatch, proxy
from infrakit.spi import metadata


def methods(objects: dict[str, Any]) -> dispatch.Methods:
    plugin = dispatch.pick(objects, "", interface=metadata.INTERFACE)

    async def list_(params: dict[str, Any]) -> Any:
        req = dispatch.parse(metadata.PathRequest, params, method="Metadata.List")
        nodes = await dispatch.invoke(plugin.list, metadata.split_path(req.path))
        return metadata.ListResponse(nodes=nodes)

    async def get(params: dict[str, Any]) -> Any:
        req = dispatch.parse(metadata.PathRequest, params, method="Metadata.Get")
        value = await dispatch.invoke(plugin.get, metadata.split_path(req.path))
        return metadata.GetResponse(value=value)

    return {"Metadata.List": list_, "Metadata.Get": get}


class Client(proxy.Proxy):
    """A ``metadata.Plugin`` whose methods run in a remote plugin."""

    interfaces = (metadata.INTERFACE,)

    async def list(self, path: builtins.list[str]) -> builtins.list[str]:
        answer = await self.call("Metadata.List", metadata.PathRequest(path="/".join(path)),
                                 metadata.ListResponse)
        return answer.nodes or []

    async def get(self, path: builtins.list[str]) -> Any:
        answer = await self.call("Metadata.Get", metadata.PathRequest(path="/".join(path)),
                                 metadata.GetResponse)
        return answer.value
