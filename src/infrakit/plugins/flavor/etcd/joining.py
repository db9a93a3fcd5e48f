"""How a new instance's member joins the cluster, pure: Prepare's decision.

From what the cluster looks like (a :class:`~.view.View`, or None when no member answers):

- **no member answers** (the first commit, or every member down): ``new``, with the whole
  allocation as the initial cluster. A data dir left by an earlier life is kept, and etcd
  then restarts from it (it ignores the initial-cluster flags), so a cluster whose members
  all died comes back with its data.
- **members answer, no leader**: a cluster still forming (its members listed but none
  started): ``new`` as above, when this member is one of them. A started member of a
  cluster that lost its quorum: ``restart`` from its data dir, the only way to give the
  quorum back; it refuses to start without one. Anything else waits for a leader.
- **a leader**: ``existing``. Members that carry this member's name or peer URL and have
  started (a dead predecessor) are removed first; one that was added but never started is
  taken over; otherwise this member is added (MemberAdd). The data dir is wiped: a member
  that is not in the cluster any more must not come back with its old data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from infrakit import errors
from infrakit.plugins.flavor.etcd import members, settings
from infrakit.plugins.flavor.etcd.view import View

State = Literal["new", "existing", "restart"]


@dataclass(frozen=True, slots=True)
class Join:
    """What Prepare does for one member, and how its etcd then starts."""

    state: State
    """``--initial-cluster-state`` (``restart``: ``existing``, from the data dir only)."""
    remove: tuple[members.Member, ...] = ()
    """Stale members to remove from the cluster first."""
    add: bool = False
    """Whether to MemberAdd this member's peer URL."""
    cluster: tuple[settings.Address, ...] = ()
    """The initial cluster (``new``): the allocation's members."""
    why: str = ""
    """The decision in a few words, for the log."""


def plan(view: View | None, *, me: settings.Address,
         allocation: Sequence[settings.Address]) -> Join:
    """The join of the member at ``me`` into the cluster ``view`` shows."""
    if view is None:
        return Join(state="new", cluster=tuple(allocation),
                    why="no member answers: bootstrapping (or restarting from data)")
    mine = view.by_peer_url(me.peer_url)
    if not view.leader:
        if mine is not None and not mine.started:
            return Join(state="new", cluster=tuple(allocation),
                        why="the cluster is forming")
        if mine is not None:
            return Join(state="restart", cluster=tuple(allocation),
                        why="the cluster has no leader: restarting from data")
        raise errors.TemporaryError(
            f"{me.name} cannot join now: the cluster has no leader", delay=2.0)
    stale = tuple(m for m in view.listed
                  if (m.started and me.peer_url in m.peer_urls)
                  or (m.name == me.name and me.peer_url not in m.peer_urls))
    taken_over = mine is not None and mine not in stale
    why = "taking over its added member" if taken_over else "adding it"
    if stale:
        why = f"removing its old member, then {why}"
    return Join(state="existing", remove=stale, add=not taken_over, why=why)


def membership(listed: Sequence[members.Member], *, me: settings.Address,
               known: Sequence[settings.Address]) -> list[tuple[str, str]]:
    """``--initial-cluster`` of a member joining with ``existing``: every member's (name,
    peer URL). Members that have not started yet have no name: theirs comes from the
    logical ID their peer URL belongs to (``known``), else from their ID."""
    by_url = {a.peer_url: a.name for a in (*known, me)}
    pairs: list[tuple[str, str]] = []
    for member in listed:
        for url in member.peer_urls:
            name = member.name or by_url.get(url) or f"m{member.id:x}"
            pairs.append((name, url))
    return pairs
