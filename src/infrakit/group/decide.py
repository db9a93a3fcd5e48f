"""One reconcile's decision: from the declared group and what is there, what to do now; pure.

Phases, in order: remediation (replace members unhealthy for too long, within the
budget), the rolling update's bookkeeping (its health gate and HealthTimeout), then
membership (cattle: surplus and missing; pets: one per logical ID), then the update's
next step once membership is settled; finally the backoffs: creations for slots in a
crash loop's backoff wait (:mod:`.crashloop`), then the provisioning breaker's allowance.
The supervisor observes, calls :func:`decide`, and carries the decision out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from infrakit import durations
from infrakit.group import (
    crashloop,
    gate,
    health,
    membership,
    ordering,
    remediation,
    rolling,
    tags,
)
from infrakit.group.target import Target
from infrakit.spi import flavor, instance


@dataclass(slots=True)
class View:
    """What the supervisor knows now."""

    members: dict[str, instance.Description]
    """Members present: listed, or created and not yet listed; those going are left out."""
    unobserved: frozenset[str] = frozenset()
    """Members created but not yet listed."""
    locked: frozenset[str] = frozenset()
    """Members no decision may remove: unobserved ones (nothing to drain yet) and those
    DestroyInstances is removing."""
    first_seen: Mapping[str, float] = field(default_factory=dict)
    """When each member was created or first listed (monotonic seconds)."""
    pending: list[instance.LogicalID | None] = field(default_factory=list)
    """Creations in flight (their logical IDs)."""
    removing: int = 0
    """Removals in flight."""
    book: health.Book = field(default_factory=health.Book)
    """Health verdicts."""
    order: Sequence[str] = ()
    """(ext) The flavor's replacement order of the members (Flavor.Order; the leader last):
    a rolling update replaces those it leaves out first, then those it names, in turn."""


@dataclass(slots=True)
class Decision:
    """What to do now, and how the group stands."""

    creates: list[membership.Create] = field(default_factory=list)
    removals: list[membership.Removal] = field(default_factory=list)
    update: rolling.UpdateState | None = None
    """The rolling update's state after this round (``None``: none in flight)."""
    holds: list[str] = field(default_factory=list)
    """Why the group is held back from its declared state."""
    deferred: int = 0
    """Creations held back by the provisioning backoff."""
    backing_off: int = 0
    """Creations held back by a crash loop's backoff."""
    converged: bool = False
    """True when the members match the spec and nothing is to be done or in flight."""


def decide(target: Target, view: View, update: rolling.UpdateState | None, *, now: float,
           allowance: int | None, update_since: float,
           waiting: Collection[str] = ()) -> Decision:
    """Decide one round. ``allowance``: how many provisions the backoff permits (None: any);
    ``update_since``: when the update started or was resumed (HealthTimeout counts from it);
    ``waiting``: the crash-loop slots (logical IDs, or ``crashloop.CATTLE``) not to re-create
    yet.
    """
    props = target.props
    members = list(view.members.values())
    verdict = remediation.judge(members, policy=props.health, protect_tag=props.scale.protect_tag,
                                book=view.book, first_seen=view.first_seen, now=now)
    decision = Decision(holds=[verdict.hold] if verdict.hold else [])
    decision.removals = [membership.Removal(m, remediation.reason(spell), verb="replaced",
                                            cause="unhealthy")
                         for m, spell in verdict.replace if m.id not in view.locked]
    replaced = {r.member.id for r in decision.removals}
    remaining = [m for m in members if m.id not in replaced]
    decision.update = track(target, remaining, view, update, now=now, since=update_since)
    if props.logical_ids is None:
        _cattle(target, remaining, view, decision)
    else:
        _pets(target, remaining, view, decision, props.logical_ids)
    hold_back(decision, waiting)
    if allowance is not None and len(decision.creates) > allowance:
        decision.deferred = len(decision.creates) - allowance
        decision.creates = decision.creates[:allowance]
    decision.converged = _converged(target, remaining, view, decision)
    return decision


def hold_back(decision: Decision, waiting: Collection[str]) -> None:
    """Drop the creations for crash-loop slots in ``waiting`` (counted in ``backing_off``)."""
    if not waiting:
        return
    kept = [c for c in decision.creates if not _waits(c, waiting)]
    decision.backing_off += len(decision.creates) - len(kept)
    decision.creates = kept


def _waits(create: membership.Create, waiting: Collection[str]) -> bool:
    slot = create.logical_id if create.logical_id is not None else crashloop.CATTLE
    return slot in waiting


def track(target: Target, members: Sequence[instance.Description], view: View,
          update: rolling.UpdateState | None, *, now: float,
          since: float) -> rolling.UpdateState | None:
    """The update's state after this round: started, gated, paused on timeout, or finished."""
    protect = target.props.scale.protect_tag
    if update is not None and update.target != target.sha:
        update = None
    if not _any_stale(members, target.sha, protect):
        return None
    if update is None:
        return rolling.UpdateState(target=target.sha)  # its health gate starts next round
    if update.aborted:
        return update
    current = [m for m in members if tags.is_current(m, target.sha)]
    before = set(update.done)
    done = {m.id for m in current
            if m.id in before or view.book.verdict(m.id) == flavor.Health.HEALTHY}
    changes: dict[str, object] = {}
    if done != before:
        changes["done"] = sorted(done)
    timeout = target.props.update.health_timeout
    late = [m.id for m in current if m.id not in done
            and now - max(view.first_seen.get(m.id, now), since) >= timeout]
    if late and not update.paused:
        changes["paused"] = True
        changes["reason"] = (f"paused because {min(late)} was not Healthy within "
                             f"{durations.format_duration(timeout)}")
    return update.model_copy(update=changes) if changes else update


def _any_stale(members: Sequence[instance.Description], sha: str, protect: str) -> bool:
    """True when an unprotected member runs another config (runs every poll: kept lean)."""
    key, current = tags.CONFIG_SHA, (sha, tags.BOOTSTRAP)
    return any(m.tags.get(key) not in current and not tags.protected(m, protect)
               for m in members)


def _active(update: rolling.UpdateState | None) -> rolling.UpdateState | None:
    """The update when it is replacing members (paused counts, aborted does not)."""
    return update if update is not None and not update.aborted else None


def _removal_order(target: Target, members: Sequence[instance.Description],
                   view: View) -> list[instance.Description]:
    protect = target.props.scale.protect_tag
    candidates = [m for m in members
                  if m.id not in view.locked and not tags.protected(m, protect)]
    return ordering.removal_order(candidates, target.props.scale.policy,
                                  first_seen=view.first_seen, book=view.book)


def _cattle(target: Target, members: list[instance.Description], view: View,
            decision: Decision) -> None:
    props, update = target.props, _active(decision.update)
    size = props.size
    if update is not None and update.hold_size is not None:
        size = min(size, update.hold_size)  # growing: roll first, then add
    pace = rolling.pace(props.update, size)
    total = len(members) + len(view.pending)
    cap = size + pace.surge if update is not None else size
    if total > cap:
        found = membership.surplus(cap=cap, total=total, protect_tag=props.scale.protect_tag,
                                   removable=_removal_order(target, members, view))
        decision.removals += found.removals
        decision.holds += found.holds
        return
    if update is None:
        decision.creates += membership.missing(size=size, total=total)
        return
    _roll(target, members, view, decision, update, size=size, pace=pace)


def _pets(target: Target, members: list[instance.Description], view: View,
          decision: Decision, ids: list[str]) -> None:
    props = target.props
    found = membership.pets(ids=ids, members=members, pending=view.pending,
                            removing=view.removing, sha=target.sha,
                            protect_tag=props.scale.protect_tag, locked=view.locked)
    decision.creates += found.changes.creates
    decision.removals += found.changes.removals
    decision.holds += found.changes.holds
    settled = not found.changes.creates and not found.changes.removals and not view.pending
    update = _active(decision.update)
    if settled and update is not None:  # pets have no surge: a logical ID exists once
        pace = rolling.Pace(surge=0, unavailable=rolling.pace(props.update, len(ids)).unavailable)
        _roll(target, list(found.chosen.values()), view, decision, update, size=len(ids),
              pace=pace)


def _roll(target: Target, members: list[instance.Description], view: View,
          decision: Decision, update: rolling.UpdateState, *, size: int,
          pace: rolling.Pace) -> None:
    old = [m for m in members if not tags.is_current(m, target.sha)]
    replaceable = gate.ordered(_removal_order(target, old, view), view.order)
    done = set(update.done)
    total = len(members) + len(view.pending)
    step = rolling.step(
        size=size, pace=pace, old=replaceable, total=total,
        keepers=len(members) - len(replaceable) + len(view.pending),
        available=len(old) + sum(1 for m in members if m.id in done),
        paused=update.paused)
    decision.creates += [
        membership.Create(None, f"count {total + n} < {size}" if total + n < size
                          else f"the rolling update to {target.sha} may surge")
        for n in range(step.creates)]
    decision.removals += [
        membership.Removal(m, f"its config {tags.config_sha(m) or '(none)'} is not "
                              f"{target.sha} (rolling update)", verb="replaced",
                           cause="rolling")
        for m in step.destroy]


def _converged(target: Target, members: list[instance.Description], view: View,
               decision: Decision) -> bool:
    if (decision.creates or decision.removals or decision.holds or decision.deferred
            or decision.backing_off or decision.update is not None or view.pending
            or view.removing or view.unobserved):
        return False
    ids = target.props.logical_ids
    if ids is None:
        return len(members) == target.props.size
    return sorted(str(m.logical_id) for m in members) == sorted(ids)
