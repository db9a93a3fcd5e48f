"""The Flavor interface over RPC: the server's method table and the client proxy.

Flavor.Healthy answers (ext) a ``Reason`` when the plugin has the optional ``judge``
method (:class:`infrakit.spi.flavor.Judge`); the client's ``judge`` reads it.

(ext) Flavor.CanRemove and Flavor.Order (:class:`infrakit.spi.flavor.Gatekeeper`) are
answered by a plugin object that has ``can_remove`` / ``order``; for one without them the
answer is "method not found", as from a v0.5 peer, which has neither. The client reads that
as "allowed" / "any order" and does not ask that object again, so a group stops sending
its member list to a flavor with nothing to say (as the Group extensions are served only
by implementations that have them).
"""

from __future__ import annotations

import weakref
from typing import Any

from infrakit import errors
from infrakit.rpc import client, dispatch, proxy
from infrakit.spi import flavor, instance

CAN_REMOVE = "Flavor.CanRemove"
ORDER = "Flavor.Order"

_lacking: weakref.WeakKeyDictionary[client.Client, set[tuple[str, str]]] = \
    weakref.WeakKeyDictionary()
"""The (ext) methods, with the Type, each socket answered "method not found" to: not asked
again for the life of the process."""


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

    async def can_remove(params: dict[str, Any]) -> Any:
        req = dispatch.parse(flavor.CanRemoveRequest, params, method=CAN_REMOVE)
        plugin = _having(target(req.type), "can_remove", method=CAN_REMOVE, type_name=req.type)
        answer = await dispatch.invoke(plugin.can_remove, req.properties, req.instance,
                                       list(req.members))
        removal = _removal(answer, plugin=plugin)
        return flavor.CanRemoveResponse(type=req.type, allowed=removal.allowed,
                                        reason=None if removal.allowed else removal.reason)

    async def order(params: dict[str, Any]) -> Any:
        req = dispatch.parse(flavor.OrderRequest, params, method=ORDER)
        plugin = _having(target(req.type), "order", method=ORDER, type_name=req.type)
        ids = await dispatch.invoke(plugin.order, req.properties, list(req.instances))
        return flavor.OrderResponse(type=req.type, ids=[instance.ID(str(i)) for i in ids or []])

    return {
        "Flavor.Validate": validate,
        "Flavor.Prepare": prepare,
        "Flavor.Healthy": healthy,
        "Flavor.Drain": drain,
        CAN_REMOVE: can_remove,
        ORDER: order,
    }


def _having(plugin: Any, attribute: str, *, method: str, type_name: str) -> Any:
    """``plugin`` if it has the optional ``attribute``, else "method not found"."""
    if hasattr(plugin, attribute):
        return plugin
    served = f" for type {type_name!r}" if type_name else ""
    raise errors.MethodNotFound(f'rpc: can\'t find method "{method}"{served}', method=method)


def _removal(answer: Any, *, plugin: Any) -> flavor.Removal:
    """A plugin's ``can_remove`` answer as a Removal (a bare bool is accepted too)."""
    if isinstance(answer, flavor.Removal):
        return answer
    if isinstance(answer, bool):
        return flavor.Removal(allowed=answer)
    raise errors.PermanentError(
        f"{type(plugin).__name__}.can_remove returned {type(answer).__name__}; expected a "
        "flavor.Removal")


def unknown_method(err: errors.InfrakitError) -> bool:
    """True when ``err`` says the peer has no such method: ours (-32601) or v0.5's (read as
    ``MethodNotFound`` by :func:`infrakit.errors.from_wire`)."""
    return isinstance(err, errors.MethodNotFound)


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

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        """(ext) Flavor.CanRemove; allowed when the peer does not know the method (v0.5)."""
        if self._lacks(CAN_REMOVE):
            return flavor.Removal(allowed=True)
        request = flavor.CanRemoveRequest(type=self.type_name, properties=properties,
                                          members=members, instance=inst)
        try:
            answer = await self.call(CAN_REMOVE, request, flavor.CanRemoveResponse)
        except errors.InfrakitError as err:
            if not unknown_method(err):
                raise
            self._remember_lacking(CAN_REMOVE)
            return flavor.Removal(allowed=True)
        return flavor.Removal(allowed=answer.allowed,
                              reason="" if answer.allowed else answer.reason or "")

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        """(ext) Flavor.Order; ``[]`` (any order) when the peer does not know the method."""
        if self._lacks(ORDER):
            return []
        request = flavor.OrderRequest(type=self.type_name, properties=properties,
                                      instances=members)
        try:
            answer = await self.call(ORDER, request, flavor.OrderResponse)
        except errors.InfrakitError as err:
            if not unknown_method(err):
                raise
            self._remember_lacking(ORDER)
            return []
        return list(answer.ids)

    def _lacks(self, method: str) -> bool:
        return (method, self.type_name) in _lacking.get(self.rpc, ())

    def _remember_lacking(self, method: str) -> None:
        _lacking.setdefault(self.rpc, set()).add((method, self.type_name))
