"""A tiny in-memory instance plugin, served as its own process by the lifecycle tests.

Usage: python memory_plugin.py NAME PLUGINS_DIR
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

from infrakit import errors
from infrakit.rpc import server
from infrakit.spi import instance


class Memory:
    """Instances as dict entries; sync methods, so the server runs them in a thread."""

    def __init__(self) -> None:
        self.members: dict[str, instance.Description] = {}
        self.ids = itertools.count(1)

    def validate(self, properties: Any) -> None:
        if properties is not None and not isinstance(properties, dict):
            raise errors.InvalidError("Properties: expected an object")

    def provision(self, spec: instance.Spec) -> instance.ID:
        new = instance.ID(f"instance-{next(self.ids)}")
        self.members[new] = instance.Description(id=new, logical_id=spec.logical_id,
                                                 tags=spec.tags, properties=spec.properties)
        return new

    def label(self, inst: instance.ID, labels: dict[str, str]) -> None:
        old = self.find(inst)
        self.members[inst] = old.model_copy(update={"tags": {**old.tags, **labels}})

    def destroy(self, inst: instance.ID) -> None:
        self.find(inst)
        del self.members[inst]

    def describe_instances(self, tags: dict[str, str],
                           properties: bool = False) -> list[instance.Description]:
        found = [d for d in self.members.values()
                 if all(d.tags.get(k) == v for k, v in tags.items())]
        if properties:
            return found
        return [d.model_copy(update={"properties": None}) for d in found]

    def find(self, inst: instance.ID) -> instance.Description:
        try:
            return self.members[inst]
        except KeyError:
            raise errors.NotFoundError(f"instance {inst!r} not found", instance=inst) from None


if __name__ == "__main__":
    server.run(sys.argv[1], instance=Memory(), plugins_dir=sys.argv[2])
