"""The swarm as the engines tell it: which manager answers, join tokens, nodes, and the
changes Drain and Prepare make (drain, demote, leave, remove).

Every call goes through :class:`infrakit.plugins.instance.docker.engine.Engine` (asyncio, a
unix socket per engine) with a short timeout: a host that is down must not stall the group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from infrakit import errors
from infrakit.plugins.flavor.swarm import quorum
from infrakit.plugins.instance.docker import engine

log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""Seconds one engine call may take."""
DEMOTE_WAIT = 30.0
"""Seconds Drain waits for a demotion to take effect before the node leaves."""


@dataclass(frozen=True, slots=True)
class View:
    """The swarm as one reachable manager sees it."""

    url: str
    """The manager's engine that answered."""
    swarm_id: str
    worker_token: str
    manager_token: str
    nodes: list[quorum.Node] = field(default_factory=list)

    def addresses(self) -> list[str]:
        """Where the reachable managers listen for joins, the leader first."""
        ranked = sorted((n for n in self.nodes if n.reachable), key=lambda n: not n.leader)
        return [n.manager_addr for n in ranked if n.manager_addr]

    def token(self, role: str) -> str:
        return self.manager_token if role == "manager" else self.worker_token

    def node(self, node_id: str) -> quorum.Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def manager_at(self, host: str) -> quorum.Node | None:
        """The reachable manager advertised at ``host``, else any manager there."""
        there = [n for n in self.nodes if n.manager and n.manager_host == host]
        return next((n for n in there if n.reachable), there[0] if there else None)


async def _get(url: str, path: str) -> Any:
    answer = await engine.Engine(url).call("GET", path, timeout=TIMEOUT)
    if not answer.ok:
        raise errors.Unavailable(f"{url}: GET {path}: {answer.message}")
    return answer.json()


async def info(url: str) -> dict[str, Any]:
    """The engine's ``/info`` (``Unavailable`` when it does not answer)."""
    data = await _get(url, "/info")
    return data if isinstance(data, dict) else {}


async def local_node(url: str) -> tuple[str, str]:
    """The node ID of the engine at ``url`` and its state (``inactive``, ``active``, ...)."""
    swarm = (await info(url)).get("Swarm") or {}
    return str(swarm.get("NodeID", "")), str(swarm.get("LocalNodeState", ""))


async def view(urls: list[str]) -> View | None:
    """The swarm as the first engine of ``urls`` that is a manager with a quorum sees it;
    None when none is."""
    why: list[str] = []
    for url in urls:
        try:
            return await _view(url)
        except errors.InfrakitError as exc:
            why.append(exc.message)
    log.debug("no manager answers: %s", "; ".join(why))
    return None


async def any_member(urls: list[str]) -> bool:
    """Whether any engine of ``urls`` is in a swarm: then a swarm exists and has lost its
    quorum (or its managers are busy), and initializing another one would split it."""
    for url in urls:
        try:
            _, state = await local_node(url)
        except errors.InfrakitError:
            continue
        if state not in ("", "inactive"):
            return True
    return False


async def _view(url: str) -> View:
    swarm = (await info(url)).get("Swarm") or {}
    if not swarm.get("ControlAvailable"):
        raise errors.Unavailable(f"{url}: not a manager ({swarm.get('LocalNodeState')})")
    inspected = await _get(url, "/swarm")
    tokens = inspected.get("JoinTokens") or {}
    nodes = [quorum.Node.from_api(item) for item in await _get(url, "/nodes")]
    return View(url=url, swarm_id=str(inspected.get("ID", "")),
                worker_token=str(tokens.get("Worker", "")),
                manager_token=str(tokens.get("Manager", "")), nodes=nodes)


async def update(url: str, node_id: str, **changes: str) -> None:
    """Change the node's spec (``Role``, ``Availability``) through the manager at ``url``."""
    api = engine.Engine(url)
    current = await _get(url, f"/nodes/{node_id}")
    spec = {**(current.get("Spec") or {}), **changes}
    version = (current.get("Version") or {}).get("Index", 0)
    answer = await api.call("POST", f"/nodes/{node_id}/update", query={"version": version},
                            body=spec, timeout=TIMEOUT)
    if not answer.ok:
        raise errors.TemporaryError(f"{url}: update of node {node_id}: {answer.message}")


async def demote(url: str, node_id: str) -> None:
    """Make the node a worker and wait until the swarm counts it so (best effort)."""
    await update(url, node_id, Role="worker")
    deadline = time.monotonic() + DEMOTE_WAIT
    while time.monotonic() < deadline:
        current = await _get(url, f"/nodes/{node_id}")
        if not current.get("ManagerStatus"):
            return
        await asyncio.sleep(0.5)
    log.warning("node %s is still a manager %gs after its demotion", node_id, DEMOTE_WAIT)


async def remove(url: str, node_id: str) -> None:
    """Remove the node from the swarm, forcibly (it may be up but gone to us)."""
    answer = await engine.Engine(url).call("DELETE", f"/nodes/{node_id}",
                                           query={"force": "true"}, timeout=TIMEOUT)
    if not answer.ok and answer.status != 404:
        raise errors.TemporaryError(f"{url}: removal of node {node_id}: {answer.message}")


async def leave(url: str) -> None:
    """The node at ``url`` leaves its swarm."""
    answer = await engine.Engine(url).call("POST", "/swarm/leave", query={"force": "true"},
                                           timeout=TIMEOUT * 3)
    if not answer.ok and answer.status != 503:  # 503: not part of a swarm
        raise errors.TemporaryError(f"{url}: leave: {answer.message}")
