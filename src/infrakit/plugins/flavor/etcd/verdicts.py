"""The etcd flavor's judgements, pure: may a member go now, in which order, is it healthy.

Over a :class:`~.view.View` (CanRemove, Order) or what one member said of itself
(Healthy); the plugin gathers the data, these functions decide and say why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infrakit.plugins.flavor.etcd import members, settings
from infrakit.plugins.flavor.etcd.view import View, describe
from infrakit.spi import flavor, instance


def quorum(voters: int) -> int:
    """How many voting members a cluster of ``voters`` needs to act."""
    return voters // 2 + 1


def removal(view: View, target: settings.Address) -> flavor.Removal:
    """Whether the member at ``target`` may leave now: never while the cluster has no
    leader or another member is still joining or catching up, never below a quorum of
    healthy started members."""
    leaving = view.find(target)
    if leaving is None:
        return flavor.Removal(allowed=True)  # not a member: removing it costs nothing
    if leaving.learner:
        return flavor.Removal(allowed=True)  # learners do not vote
    if not view.leader:
        return _refused(f"removing {target.name} now: the cluster has no leader")
    for other in view.voters:
        if other.id != leaving.id and _joining(view, other):
            return _refused(f"removing {target.name} must wait: {view.why_not_healthy(other)}")
    after = len(view.voters) - 1
    healthy = sum(1 for m in view.voters if m.id != leaving.id and view.healthy(m))
    if healthy < quorum(after):
        return _refused(f"removing {target.name} would leave {healthy} of {after} voting "
                        f"members healthy; quorum needs {quorum(after)}")
    return flavor.Removal(allowed=True)


def _joining(view: View, member: members.Member) -> bool:
    """Added but not started, or started and not yet caught up: a member the cluster is
    still taking in (a dead one is started and does not answer: that is not joining)."""
    return not member.started or view.lag(member) is not None


def _refused(reason: str) -> flavor.Removal:
    return flavor.Removal(allowed=False, reason=reason)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A group member and the etcd identity its logical ID gives it."""

    id: instance.ID
    address: settings.Address | None
    """None when the instance has no usable logical ID."""


def order(view: View, candidates: Sequence[Candidate]) -> list[instance.ID]:
    """The instances in the order they should be replaced: those that are no healthy
    member first, then the followers, the raft leader last."""
    def rank(candidate: Candidate) -> tuple[int, str]:
        found = view.find(candidate.address) if candidate.address is not None else None
        if found is None or not view.healthy(found):
            return 0, candidate.id
        return (2 if found.id == view.leader else 1), candidate.id
    return [c.id for c in sorted(candidates, key=rank)]


def health(address: settings.Address, *, ok: bool, said: str,
           own: members.Status | None, listed: Sequence[members.Member]) -> flavor.Verdict:
    """The verdict on the member at ``address``: ``ok`` and ``said`` are its ``/health``
    answer, ``own`` its Status, ``listed`` its MemberList (``[]`` when it did not answer)."""
    if not ok:
        return flavor.Verdict(flavor.Health.UNHEALTHY, f"{address.name}: {said}")
    me = next((m for m in listed if own is not None and m.id == own.member_id), None)
    if me is None or address.peer_url not in me.peer_urls:
        return flavor.Verdict(flavor.Health.UNHEALTHY,
                              f"{address.name} is not a member of the cluster it answers for")
    if not me.started:
        return flavor.Verdict(flavor.Health.UNHEALTHY, f"{address.name} has not started yet")
    if own is None or not own.leader or own.problems:
        why = "; ".join(own.problems) if own is not None and own.problems else "no leader"
        return flavor.Verdict(flavor.Health.UNHEALTHY, f"{address.name}: {why}")
    leader = next((describe(m) for m in listed if m.id == own.leader), f"{own.leader:x}")
    role = "the leader" if own.leader == own.member_id else f"leader {leader}"
    return flavor.Verdict(flavor.Health.HEALTHY,
                          f"{address.name} is a started member of a {len(listed)}-member "
                          f"cluster ({role})")
