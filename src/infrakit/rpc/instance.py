"""The Instance interface over RPC: the server's method table and the client proxy."""

from __future__ import annotations

from typing import Any

from infrakit.rpc import dispatch, proxy
from infrakit.spi import instance


def methods(objects: dict[str, Any]) -> dispatch.Methods:
    """Server-side handlers for ``objects`` (``{type: plugin}``)."""

    def target(type_name: str) -> Any:
        return dispatch.pick(objects, type_name, interface=instance.INTERFACE)

    async def validate(params: dict[str, Any]) -> Any:
        req = dispatch.parse(instance.ValidateRequest, params, method="Instance.Validate")
        await dispatch.invoke(target(req.type).validate, req.properties)
        return instance.OKResponse(type=req.type)

    async def provision(params: dict[str, Any]) -> Any:
        req = dispatch.parse(instance.ProvisionRequest, params, method="Instance.Provision")
        new_id = await dispatch.invoke(target(req.type).provision, req.spec)
        return instance.ProvisionResponse(type=req.type, id=new_id)

    async def label(params: dict[str, Any]) -> Any:
        req = dispatch.parse(instance.LabelRequest, params, method="Instance.Label")
        await dispatch.invoke(target(req.type).label, req.instance, req.labels)
        return instance.OKResponse(type=req.type)

    async def destroy(params: dict[str, Any]) -> Any:
        req = dispatch.parse(instance.DestroyRequest, params, method="Instance.Destroy")
        await dispatch.invoke(target(req.type).destroy, req.instance)
        return instance.OKResponse(type=req.type)

    async def describe(params: dict[str, Any]) -> Any:
        req = dispatch.parse(instance.DescribeRequest, params,
                             method="Instance.DescribeInstances")
        found = await dispatch.invoke(target(req.type).describe_instances, req.tags,
                                      req.properties)
        return instance.DescribeResponse(type=req.type, descriptions=found)

    return {
        "Instance.Validate": validate,
        "Instance.Provision": provision,
        "Instance.Label": label,
        "Instance.Destroy": destroy,
        "Instance.DescribeInstances": describe,
    }


class Client(proxy.Proxy):
    """An ``instance.Plugin`` whose methods run in a remote plugin."""

    interfaces = (instance.INTERFACE,)

    async def validate(self, properties: Any) -> None:
        await self.call("Instance.Validate",
                        instance.ValidateRequest(type=self.type_name, properties=properties),
                        instance.OKResponse)

    async def provision(self, spec: instance.Spec) -> instance.ID | None:
        answer = await self.call("Instance.Provision",
                                 instance.ProvisionRequest(type=self.type_name, spec=spec),
                                 instance.ProvisionResponse)
        return answer.id

    async def label(self, inst: instance.ID, labels: dict[str, str]) -> None:
        await self.call("Instance.Label",
                        instance.LabelRequest(type=self.type_name, instance=inst, labels=labels),
                        instance.OKResponse)

    async def destroy(self, inst: instance.ID) -> None:
        await self.call("Instance.Destroy",
                        instance.DestroyRequest(type=self.type_name, instance=inst),
                        instance.OKResponse)

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        answer = await self.call(
            "Instance.DescribeInstances",
            instance.DescribeRequest(type=self.type_name, tags=tags, properties=properties),
            instance.DescribeResponse,
        )
        return answer.descriptions
