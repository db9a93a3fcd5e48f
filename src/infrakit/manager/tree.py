"""The Metadata a manager serves: a read-only tree about itself, its leader and its groups.

Every manager answers for itself (never forwarded)::

    manager          {Name, Leader, Backend}: this manager
    leader           {Name, Since, Lease, TTL, Backend}: who leads
    groups           one child per stored group
    groups/<id>      the group's committed spec; deeper paths walk into it
                     (groups/web/Properties/Allocation/Size)

Groups come from the store, which every manager can read (the leader alone writes it).
"""

from __future__ import annotations

import builtins
from typing import Any

from infrakit.manager import proxy


class Tree:
    """``spi.metadata.Plugin`` over one manager."""

    def __init__(self, manager: proxy.Manager) -> None:
        self.manager = manager

    async def list(self, path: builtins.list[str]) -> builtins.list[str]:
        found = _walk(await self._root(path[:2]), path)
        return sorted(str(key) for key in found) if isinstance(found, dict) else []

    async def get(self, path: builtins.list[str]) -> Any:
        return _walk(await self._root(path[:2]), path)

    async def _root(self, head: builtins.list[str]) -> dict[str, Any]:
        """The top of the tree, reading only the branch that ``head`` names."""
        root: dict[str, Any] = {"manager": {}, "leader": {}, "groups": {}}
        if not head or head[0] == "manager":
            root["manager"] = {"Name": self.manager.name,
                               "Leader": await self.manager.is_leader(),
                               "Backend": self.manager.backend_name}
        if not head or head[0] == "leader":
            root["leader"] = (await self.manager.leader_info()).to_wire()
        if head and head[0] == "groups":
            doc = await self.manager.store.load()
            root["groups"] = {gid: entry.properties for gid, entry in doc.groups.items()}
        return root


def _walk(node: Any, path: builtins.list[str]) -> Any:
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, builtins.list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
