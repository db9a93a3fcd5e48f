"""One look at an etcd cluster: its members and what each started member says of itself.

:func:`observe` asks MemberList of the first client URL that answers, then
Maintenance.Status of every started member at once (each within the flavor's
``Timeout``); the :class:`View` it returns is what the pure decisions of
:mod:`.verdicts` and :mod:`.joining` work on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from infrakit import errors
from infrakit.plugins.flavor.etcd import members, settings

log = logging.getLogger(__name__)

CAUGHT_UP = 0.9
"""A member has caught up once it has applied this share of the leader's raft log: the
rule etcd itself applies before it promotes a learner."""


@dataclass(frozen=True)
class View:
    """The cluster as one round of requests saw it."""

    listed: list[members.Member]
    """Every member, as MemberList showed it."""
    statuses: dict[int, members.Status] = field(default_factory=dict)
    """What each started member that answered said, by member ID."""
    failures: dict[int, str] = field(default_factory=dict)
    """Why a started member did not answer, by member ID."""

    @property
    def leader(self) -> int:
        """The raft leader most members that answered agree on; 0 when none."""
        votes = collections.Counter(s.leader for s in self.statuses.values()
                                    if s.leader and not s.problems)
        return votes.most_common(1)[0][0] if votes else 0

    @property
    def voters(self) -> list[members.Member]:
        return [m for m in self.listed if not m.learner]

    def member(self, member_id: int) -> members.Member | None:
        return next((m for m in self.listed if m.id == member_id), None)

    def by_peer_url(self, url: str) -> members.Member | None:
        return next((m for m in self.listed if url in m.peer_urls), None)

    def find(self, address: settings.Address) -> members.Member | None:
        """The member at ``address``: by its peer URL, else by its name."""
        return self.by_peer_url(address.peer_url) or next(
            (m for m in self.listed if m.name and m.name == address.name), None)

    def healthy(self, member: members.Member) -> bool:
        """Started, answering, following the cluster's leader, and caught up with it."""
        said = self.statuses.get(member.id)
        return (member.started and said is not None and not said.problems
                and said.leader != 0 and said.leader == self.leader
                and self.lag(member) is None)

    def lag(self, member: members.Member) -> tuple[int, int] | None:
        """``(applied, leader's index)`` while ``member`` has not caught up, else None."""
        said, lead = self.statuses.get(member.id), self.statuses.get(self.leader)
        if said is None or lead is None:
            return None
        if said.applied_index >= CAUGHT_UP * lead.raft_index:
            return None
        return said.applied_index, lead.raft_index

    def why_not_healthy(self, member: members.Member) -> str:
        """What keeps ``member`` from counting as healthy (``""`` when it does)."""
        if not member.started:
            return f"{describe(member)} has not started yet"
        said = self.statuses.get(member.id)
        if said is None:
            return f"{describe(member)} does not answer ({self.failures.get(member.id, '?')})"
        if said.problems or not said.leader:
            return f"{describe(member)} has no leader ({'; '.join(said.problems) or 'none'})"
        if said.leader != self.leader:
            return f"{describe(member)} follows another leader"
        lag = self.lag(member)
        if lag is not None:
            return f"{describe(member)} has not caught up yet (applied {lag[0]} of {lag[1]})"
        return ""


def describe(member: members.Member) -> str:
    """The member as people name it: its name, else (not started yet) the host of its peer
    URL, which is the logical ID that named it."""
    hosts = [urllib.parse.urlsplit(url).hostname for url in member.peer_urls]
    return member.name or next((h for h in hosts if h), "") or f"member {member.id:x}"


async def observe(urls: Sequence[str], *, timeout: float, replacing: str = "") -> View:
    """The cluster as the members at ``urls`` (tried in order) and the started members
    they list see it. ``Unavailable``/``CallTimeout`` when no URL answers MemberList.

    The member with the peer URL ``replacing`` is not asked: a new instance is being made in
    its place, so it is gone, and asking a dead host costs the whole ``timeout``."""
    if not urls:
        raise errors.Unavailable("no etcd member to ask: no client URL known")
    async with members.client(urls, timeout=timeout) as client:
        _, listed = await members.member_list(client)
    started = [m for m in listed if m.started and replacing not in m.peer_urls]
    answers = await asyncio.gather(*(_status(m, timeout=timeout) for m in started))
    statuses = {m.id: a for m, a in zip(started, answers, strict=True)
                if isinstance(a, members.Status)}
    failures = {m.id: a for m, a in zip(started, answers, strict=True) if isinstance(a, str)}
    return View(listed=listed, statuses=statuses, failures=failures)


async def _status(member: members.Member, *, timeout: float) -> members.Status | str:
    try:
        async with members.client(member.client_urls, timeout=timeout) as client:
            return await members.status(client)
    except errors.InfrakitError as exc:
        log.debug("status of %s: %s", describe(member), exc.message)
        return exc.message
