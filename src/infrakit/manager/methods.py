"""(ext) The manager's own RPC methods beyond ``Manager.IsLeader``, and their wire types.

``Manager.LeaderInfo`` (who leads, since when, the lease), ``Manager.History`` (a group's
last committed specs) and ``Manager.Rollback`` (commit one of them again). Served by
:mod:`.serve` and :mod:`.embedded` next to the Group, Manager and Metadata interfaces;
called by ``infrakit manager leader|history|rollback``. ``Manager.IsLeader`` itself stays
exactly as InfraKit v0.5 has it (:mod:`infrakit.rpc.manager`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from infrakit.manager import leader, proxy, store, tenure
from infrakit.rpc import dispatch
from infrakit.spi import group
from infrakit.spi.wire import Wire, omit_if_none


class LeaderInfoResponse(Wire):
    leader: leader.Info
    """Who leads, as the answering manager sees it."""
    manager: str
    """The answering manager's name."""
    is_leader: bool = False
    """Whether the answering manager is the leader."""
    take_over: tenure.Progress | None = omit_if_none()
    """(ext) While the answering manager leads: how its take-over stands."""


class HistoryResponse(Wire):
    id: group.ID
    """Which group."""
    entries: list[store.HistoryEntry] = Field(default_factory=list)
    """Its last committed specs, oldest first."""


class RollbackRequest(Wire):
    id: group.ID
    """Which group."""
    to: int | None = Field(None, ge=1)
    """The version to commit again; the one before the newest when absent."""


class RollbackResponse(Wire):
    id: group.ID
    """Which group."""
    version: int
    """The version committed again."""
    details: str = ""
    """The plan's text, as CommitGroup answers it."""


def table(manager: proxy.Manager) -> dispatch.Methods:
    """The server-side handlers of the manager's extension methods."""

    async def leader_info(params: dict[str, Any]) -> Any:
        info = await manager.leader_info()
        return LeaderInfoResponse(leader=info, manager=manager.name,
                                  is_leader=await manager.is_leader(),
                                  take_over=manager.take_over())

    async def history(params: dict[str, Any]) -> Any:
        req = dispatch.parse(group.IDRequest, params, method="Manager.History")
        return HistoryResponse(id=req.id, entries=await manager.history(req.id))

    async def rollback(params: dict[str, Any]) -> Any:
        req = dispatch.parse(RollbackRequest, params, method="Manager.Rollback")
        version, details = await manager.rollback(req.id, req.to)
        return RollbackResponse(id=req.id, version=version, details=details)

    return {"Manager.LeaderInfo": leader_info, "Manager.History": history,
            "Manager.Rollback": rollback}
