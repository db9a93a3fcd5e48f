"""Swarm decisions without I/O: a node's health, who may leave, who leaves last.

Inputs are the Engine API's ``/nodes`` entries as :class:`Node`; :mod:`.plugin` fetches
them (:mod:`.swarm`) and turns the answers into Flavor verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    """One swarm node as a manager sees it."""

    id: str
    hostname: str = ""
    state: str = ""
    """``ready``, ``down``, ``unknown``, ``disconnected``."""
    availability: str = ""
    """``active``, ``pause``, ``drain``."""
    manager: bool = False
    reachability: str = ""
    """Managers only: ``reachable``, ``unreachable``, ``unknown``."""
    leader: bool = False
    manager_addr: str = ""
    """Managers only: the advertised ``host:port``."""

    @property
    def reachable(self) -> bool:
        return self.manager and self.reachability == "reachable"

    @property
    def manager_host(self) -> str:
        return self.manager_addr.rpartition(":")[0]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Node:
        status = data.get("ManagerStatus") or {}
        return cls(id=str(data.get("ID", "")),
                   hostname=str((data.get("Description") or {}).get("Hostname", "")),
                   state=str((data.get("Status") or {}).get("State", "")),
                   availability=str((data.get("Spec") or {}).get("Availability", "")),
                   manager=bool(status), reachability=str(status.get("Reachability", "")),
                   leader=bool(status.get("Leader", False)),
                   manager_addr=str(status.get("Addr", "")))


def majority(count: int) -> int:
    """How many of ``count`` managers Raft needs."""
    return count // 2 + 1


def verdict(node: Node | None, *, manager: bool) -> tuple[bool, str]:
    """Whether ``node`` is a healthy member for its role, and what it is."""
    if node is None:
        return False, "not a node of the swarm"
    if node.state != "ready":
        return False, f"node {node.hostname or node.id} is {node.state or '?'}, not ready"
    if not manager:
        return True, f"node {node.hostname} is ready ({node.availability})"
    if not node.manager:
        return False, f"node {node.hostname} is ready but not a manager"
    if not node.reachable:
        return False, f"manager {node.hostname} is {node.reachability or '?'}"
    role = "leader" if node.leader else "reachable manager"
    return True, f"node {node.hostname} is ready, {role}"


def removal(target: Node | None, nodes: Iterable[Node], *,
            leaving: Iterable[str] = ()) -> tuple[bool, str]:
    """Whether ``target`` may go now: the reachable managers that stay, less those already
    allowed to go (``leaving``, node IDs), must still be a majority of all the managers, as
    if ``target`` went down unannounced (a destroy that skips its drain must not lose the
    quorum either). A manager that is not reachable takes nothing away: it may go."""
    if target is None or not target.manager or not target.reachable:
        return True, ""
    managers = [node for node in nodes if node.manager]
    gone = set(leaving) | {target.id}
    staying = [m for m in managers if m.reachable and m.id not in gone]
    need = majority(len(managers))
    if len(staying) >= need:
        return True, ""
    return False, (f"removing manager {target.hostname or target.manager_host} now would leave "
                   f"{len(staying)} of {len(managers)} managers reachable; Raft needs {need}")


def order(ids_by_host: Mapping[str, str], nodes: Iterable[Node]) -> list[str]:
    """Instance IDs (by manager address host) in replacement order: managers that do not
    serve first, then followers, the leader last."""
    rank: dict[str, int] = {}
    for node in nodes:
        if node.manager and node.manager_host in ids_by_host:
            rank[ids_by_host[node.manager_host]] = 2 if node.leader else int(node.reachable)
    return sorted(ids_by_host.values(), key=lambda iid: (rank.get(iid, 0), iid))


def stale(lid: str, nodes: Iterable[Node]) -> list[Node]:
    """Nodes a new manager at ``lid`` replaces: managers advertised there that are gone
    (not reachable, or not ready)."""
    return [node for node in nodes if node.manager and node.manager_host == lid
            and (not node.reachable or node.state != "ready")]


def ghosts(lid: str, node_id: str, nodes: Iterable[Node]) -> list[Node]:
    """The other managers advertised at ``lid`` once node ``node_id`` serves there: one
    address holds one live engine, so they are the dead ones it replaced (Raft may call
    them reachable for a while after their host went down)."""
    return [node for node in nodes
            if node.manager and node.manager_host == lid and node.id != node_id]
