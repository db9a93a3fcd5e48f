"""A complete third-party flavor plugin: stamps each instance with its owner."""

from typing import Any

from infrakit import errors
from infrakit.rpc import server
from infrakit.spi import flavor, instance


class Stamp:
    def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        if not isinstance(properties, dict) or not isinstance(properties.get("Owner"), str):
            raise errors.InvalidError("Properties.Owner: expected a string")

    def prepare(self, properties: Any, spec: instance.Spec,
                allocation: flavor.AllocationMethod, index: flavor.Index) -> instance.Spec:
        owner = properties["Owner"]
        greeting = f"echo 'instance {index.sequence} of {index.group}, owned by {owner}'"
        init = "\n".join(line for line in (spec.init, greeting) if line)
        tags = {**spec.tags, "owner": owner}
        return spec.model_copy(update={"init": init, "tags": tags})

    def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return flavor.Health.HEALTHY

    def drain(self, properties: Any, inst: instance.Description) -> None:
        pass


if __name__ == "__main__":
    server.run("flavor-stamp", flavor=Stamp())
