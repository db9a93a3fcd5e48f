"""The Flavor interface over RPC: the server's method table and the client proxy.

Flavor.Healthy answers (ext) a ``Reason`` when the plugin has the optional ``judge``
method (:class:`infrakit.spi.flavor.Judge`); the client's ``judge`` reads it.
"""

from __future__ import annotations

from typing import Any

from infrakit.rpc import dispatch, proxy
from infrakit.spi import flavor, instance


def methods(objects: dict[str, Any]) -> dispatch.Methods:
    """Server-side handlers for ``objects`` (``{type: plugin}``)."""

    def target(type_name: str) -> Any:
        return dispatch.pick(objects, type_name, interface=flavor.INTERFACE)

    async def validate(params: dict[str, Any]) -> Any:
        req = dispatch.parse(flavor.ValidateRequest, params, method="Flavor.Validate")
        await dispatch.invoke(target(req.type).validate, req.properties, req.allocation)
        return instance.OKResponse(type=req.type)

    async def prepare(params: dict[str, Any]) -> Any:
        req = dispatch.parse(flavor.PrepareRequest, params, method="Flavor.Prepare")
        spec = await dispatch.invoke(target(req.type).prepare, req.properties, req.spec,
                                     req.allocation, req.index)
        return flavor.PrepareResponse(type=req.type, spec=spec)

    async def healthy(params: dict[str, Any]) -> Any:
        req = dispatch.parse(flavor.InstanceRequest, params, method="Flavor.Healthy")
        plugin = target(req.type)
        if not hasattr(plugin, "judge"):
            health = await dispatch.invoke(plugin.healthy, req.properties, req.instance)
            return flavor.HealthyResponse(type=req.type, health=health)
        verdict = await dispatch.invoke(plugin.judge, req.properties, req.instance)
        return flavor.HealthyResponse(type=req.type, health=verdict.health,
                                      reason=verdict.reason or None)

    async def drain(params: dict[str, Any]) -> Any:
        req = dispatch.parse(flavor.InstanceRequest, params, method="Flavor.Drain")
        await dispatch.invoke(target(req.type).drain, req.properties, req.instance)
        return instance.OKResponse(type=req.type)

    return {
        "Flavor.Validate": validate,
        "Flavor.Prepare": prepare,
        "Flavor.Healthy": healthy,
        "Flavor.Drain": drain,
    }


class Client(proxy.Proxy):
    """A ``flavor.Plugin`` whose methods run in a remote plugin."""

    interfaces = (flavor.INTERFACE,)

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        await self.call("Flavor.Validate",
                        flavor.ValidateRequest(type=self.type_name, properties=properties,
                                               allocation=allocation),
                        instance.OKResponse)

    async def prepare(self, properties: Any, spec: instance.Spec,
                      allocation: flavor.AllocationMethod, index: flavor.Index) -> instance.Spec:
        answer = await self.call(
            "Flavor.Prepare",
            flavor.PrepareRequest(type=self.type_name, properties=properties, spec=spec,
                                  allocation=allocation, index=index),
            flavor.PrepareResponse,
        )
        return answer.spec

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Flavor.Healthy with (ext) the probe's Reason (``""`` from a v0.5 peer)."""
        answer = await self.call(
            "Flavor.Healthy",
            flavor.InstanceRequest(type=self.type_name, properties=properties, instance=inst),
            flavor.HealthyResponse,
        )
        return flavor.Verdict(health=answer.health, reason=answer.reason or "")

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        await self.call(
            "Flavor.Drain",
            flavor.InstanceRequest(type=self.type_name, properties=properties, instance=inst),
            instance.OKResponse,
        )
