"""etcd's cluster API as the flavor needs it: members, status, health, leadership.

The calls go over our etcd client's JSON gateway transport (:class:`etcd.Client`'s
``call``): ``/v3/cluster/member/{list,add,remove}``, ``/v3/maintenance/status``,
``/v3/maintenance/transfer-leadership`` and ``GET /health``. Member IDs are uint64s that
the gateway writes as JSON strings; here they are ``int``. Errors are those of
:mod:`infrakit.manager.etcd`: etcd's refusals carry their gRPC code in ``data``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from infrakit import errors
from infrakit.manager import etcd

UNAVAILABLE = 14
"""gRPC code of "etcdserver: unhealthy cluster" (and of "no leader")."""
FAILED_PRECONDITION = 9
"""gRPC code of "re-configuration failed due to not enough started members"."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of the cluster as MemberList shows it."""

    id: int
    name: str
    """Empty until the member has started and published its name."""
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    """Empty until the member has started."""
    learner: bool = False

    @property
    def started(self) -> bool:
        """Whether the member runs and has joined (etcd's "started" member)."""
        return bool(self.name and self.client_urls)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Member:
        return cls(id=int(data.get("ID", 0)), name=str(data.get("name", "")),
                   peer_urls=tuple(data.get("peerURLs") or ()),
                   client_urls=tuple(data.get("clientURLs") or ()),
                   learner=bool(data.get("isLearner", False)))


@dataclass(frozen=True, slots=True)
class Status:
    """What one member says of itself (Maintenance.Status)."""

    member_id: int
    leader: int
    """The raft leader's member ID as this member knows it; 0: none."""
    raft_index: int
    applied_index: int
    learner: bool = False
    problems: tuple[str, ...] = ()
    """etcd's own complaints (``etcdserver: no leader``)."""


async def member_list(client: etcd.Client) -> tuple[int, list[Member]]:
    """(the answering member's ID, every member)."""
    reply = await client.call("/v3/cluster/member/list", {}, idempotent=True)
    return _header_member(reply), _members(reply)


async def add(client: etcd.Client, peer_url: str) -> tuple[Member, list[Member]]:
    """MemberAdd of a voting member at ``peer_url``: (the new member, every member)."""
    reply = await client.call("/v3/cluster/member/add", {"peerURLs": [peer_url]})
    return Member.from_json(reply.get("member") or {}), _members(reply)


async def remove(client: etcd.Client, member_id: int) -> None:
    """MemberRemove; a member already gone counts as removed."""
    with contextlib.suppress(errors.NotFoundError):
        await client.call("/v3/cluster/member/remove", {"ID": str(member_id)})


async def status(client: etcd.Client) -> Status:
    """Maintenance.Status of the member ``client`` reaches first."""
    reply = await client.call("/v3/maintenance/status", {}, idempotent=True)
    return Status(member_id=_header_member(reply), leader=int(reply.get("leader", 0)),
                  raft_index=int(reply.get("raftIndex", 0)),
                  applied_index=int(reply.get("raftAppliedIndex", 0)),
                  learner=bool(reply.get("isLearner", False)),
                  problems=tuple(str(p) for p in reply.get("errors") or ()))


async def move_leader(client: etcd.Client, target: int) -> None:
    """Maintenance.MoveLeader to ``target``; ``client`` must reach the leader."""
    await client.call("/v3/maintenance/transfer-leadership", {"targetID": str(target)})


async def health(client: etcd.Client) -> tuple[bool, str]:
    """``GET /health`` of the first endpoint: (healthy, etcd's reason or the failure)."""
    url = client.endpoints[0] + "/health"
    limit = aiohttp.ClientTimeout(total=client.timeout)
    try:
        async with client.session().get(url, timeout=limit) as response:
            body = await response.json(content_type=None)
    except TimeoutError:
        return False, f"GET {url}: no answer within {client.timeout:g}s"
    except (aiohttp.ClientError, ValueError) as exc:
        return False, f"GET {url}: {_words(exc)}"
    said = body if isinstance(body, dict) else {}
    ok = said.get("health") in ("true", True)
    return ok, str(said.get("reason") or ("" if ok else "health false"))


def client(urls: str | Sequence[str], *, timeout: float) -> etcd.Client:
    """A client of ``urls`` (tried in order) whose every attempt lasts at most ``timeout``."""
    return etcd.Client(urls, timeout=timeout)


def refused_for_now(error: errors.InfrakitError) -> bool:
    """Whether etcd refused a membership change that may pass later: its strict
    reconfiguration check ("not enough started members", "unhealthy cluster") or no leader."""
    return error.data.get("grpc_code") in (UNAVAILABLE, FAILED_PRECONDITION)


def _members(reply: dict[str, Any]) -> list[Member]:
    return [Member.from_json(m) for m in reply.get("members") or ()]


def _header_member(reply: dict[str, Any]) -> int:
    return int((reply.get("header") or {}).get("member_id", 0))


def _words(exc: BaseException) -> str:
    """``connection refused``: the OS's words for a failed connect (asyncio's own say
    "Connect call failed ('127.0.0.1', 2379)")."""
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        words = os.strerror(exc.os_error.errno)
        return words[:1].lower() + words[1:]
    return str(exc) or type(exc).__name__
