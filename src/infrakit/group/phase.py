"""Where a group stands, from what its supervisor knows; pure.

:func:`judge` turns the facts of one moment (the committed target, the last decision, the
members now and their health, the in-flight ledger, the rolling update, the provisioning
breaker, the crash-loop ledger) into the phase, its reason and the counts that
``describe`` shows. ``Converged`` is said only when it is true: every member exists,
matches the spec and is Healthy (or is not probed), and nothing is in flight. The
supervisor calls :func:`judge` whenever someone asks for the status; tests call it
directly with tables of facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from infrakit import durations
from infrakit.group import crashloop, decide, gate, health, inflight, rolling, tags
from infrakit.group.status import Counts, Phase
from infrakit.group.target import Target
from infrakit.spi import flavor, instance

NAMED = 3
"""How many members a reason names before it says "and N more"."""


@dataclass(frozen=True, slots=True)
class Provisioning:
    """The provisioning breaker's state (:class:`infrakit.group.backoff.Breaker`)."""

    failures: int = 0
    """Provisions failed in a row."""
    failing: bool = False
    """True once the failure threshold is reached."""
    last_error: str = ""
    cap: float = 60.0
    """The capped retry interval."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What the supervisor knows of its group at one moment."""

    target: Target
    decision: decide.Decision | None
    """The last reconcile's decision for ``target``; ``None`` when none yet."""
    update: rolling.UpdateState | None = None
    """The rolling update now (a pause or resume may have come since the decision)."""
    members: Mapping[str, instance.Description] = field(default_factory=dict)
    """The members now, those being removed left out (:meth:`inflight.Ledger.existing`)."""
    book: health.Book = field(default_factory=health.Book)
    """Their health verdicts."""
    probed: bool = False
    """True when members are probed (a ``Health`` interval, or an update's health gate)."""
    ledger: inflight.Snapshot = field(default_factory=inflight.Snapshot)
    busy: bool = False
    """A batch of creations and removals is still running."""
    provisioning: Provisioning = field(default_factory=Provisioning)
    crashes: crashloop.Ledger = field(default_factory=crashloop.Ledger)
    now: float = 0.0
    """Wall-clock seconds (the crash ledger's times are wall-clock)."""
    error: str | None = None
    """Why the last reconcile failed, if it did."""
    destroying: bool = False
    """DestroyGroup is removing every member."""
    waiting: Mapping[str, str] = field(default_factory=dict)
    """(ext) Members a decided removal waits on (their flavor said not now), with why."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The phase, why, and how many members are where."""

    phase: Phase
    reason: str
    counts: Counts = field(default_factory=Counts)


def counts(facts: Facts) -> Counts:
    """How many members are where, now."""
    book, sha = facts.book, facts.target.sha
    healthy = unhealthy = current = 0
    for member in facts.members.values():
        verdict = book.verdict(member.id)
        healthy += verdict == flavor.Health.HEALTHY
        unhealthy += verdict == flavor.Health.UNHEALTHY
        current += tags.is_current(member, sha)
    existing = len(facts.members)
    return Counts(expected=facts.target.props.size, existing=existing,
                  creating=len(facts.ledger.creating),
                  removing=facts.ledger.removing + facts.ledger.doomed, current=current,
                  healthy=healthy, unhealthy=unhealthy,
                  unknown=existing - healthy - unhealthy, probed=facts.probed)


def looping(facts: Facts) -> list[str]:
    """The slots in a crash loop now."""
    return crashloop.looping(facts.crashes, now=facts.now,
                             policy=facts.target.props.health.crash_loop)


def converged(facts: Facts, found: Counts | None = None) -> bool:
    """True when every member exists, matches the spec and is Healthy (or is not probed),
    the last reconcile found nothing to do, and nothing is in flight since."""
    ledger = facts.ledger
    if not (facts.decision is not None and facts.decision.converged and not ledger.creating
            and not ledger.removing and not ledger.doomed and not facts.busy
            and facts.error is None and not facts.destroying and not looping(facts)
            and facts.update is None):
        return False
    found = found if found is not None else counts(facts)
    return not found.probed or found.healthy == found.existing


def judge(facts: Facts) -> Verdict:
    """The phase of the group, its reason and its counts."""
    found = counts(facts)
    phase, reason = _phase(facts, found)
    return Verdict(phase, reason, found)


def _phase(facts: Facts, found: Counts) -> tuple[Phase, str]:
    update = facts.update
    if facts.destroying:
        return Phase.DESTROYING, "DestroyGroup is removing every member"
    decided = _decided(facts, found) if facts.decision is not None else None
    if facts.error is not None:
        return (decided[0] if decided else Phase.CONVERGING), facts.error
    if update is not None and update.paused:
        return Phase.PAUSED, update.reason
    if update is not None and update.aborted:
        return Phase.ABORTED, update.reason
    if decided is None:
        return Phase.CONVERGING, "planning the committed spec"
    if facts.waiting and decided[0] is not Phase.CONVERGED:
        return decided[0], f"{decided[1]}; {gate.explain(facts.waiting, named=NAMED)}"
    return decided


def _decided(facts: Facts, found: Counts) -> tuple[Phase, str]:
    """The phase the last decision and the facts since imply."""
    decision, update, breaker = facts.decision, facts.update, facts.provisioning
    assert decision is not None
    if breaker.failing:
        return Phase.PROVISION_FAILING, (
            f"{breaker.failures} provision attempts failed in a row ({breaker.last_error}); "
            f"retrying every {durations.format_duration(breaker.cap)}")
    slots = looping(facts)
    if slots:
        return Phase.CRASH_LOOPING, crashloop.explain(
            facts.crashes, slots, now=facts.now, policy=facts.target.props.health.crash_loop)
    if decision.holds:
        return Phase.HOLDING, "; ".join(decision.holds)
    if update is not None:
        return Phase.UPDATING, (f"rolling update to {update.target[:7]}: {found.current} of "
                                f"{found.expected} members on it, {len(update.done)} of them "
                                "passed the health gate")
    if found.unhealthy:
        return Phase.UNHEALTHY, _unhealthy(facts)
    if converged(facts, found):
        health_ = ", all Healthy" if found.probed else ""
        return Phase.CONVERGED, f"{_members(found.expected)} match the spec{health_}"
    if decision.deferred:
        return Phase.CONVERGING, (
            f"{decision.deferred} creations wait for the provisioning backoff "
            f"({breaker.failures} failed attempts in a row)")
    missing = found.expected - found.existing - found.creating
    if found.probed and found.unknown and missing <= 0 and not found.removing:
        return Phase.CONVERGING, (f"waiting for {_members(found.unknown)} to be probed "
                                  "Healthy (their health is Unknown)")
    return Phase.CONVERGING, (f"{found.existing} of {_members(found.expected)} exist; "
                              f"creating {found.creating}, removing {found.removing}")


def _unhealthy(facts: Facts) -> str:
    book, props = facts.book, facts.target.props
    policy, protect = props.health, props.scale.protect_tag
    sick = sorted((m for m in facts.members.values()
                   if book.verdict(m.id) == flavor.Health.UNHEALTHY), key=lambda m: m.id)
    plugin = props.flavor.plugin
    kept = [m.id for m in sick if tags.protected(m, protect)]
    going = [m.id for m in sick if not tags.protected(m, protect)]
    parts = []
    if going:
        when = ("never replaced: probing is off" if policy.interval <= 0 else
                f"replaced once Unhealthy for {durations.format_duration(policy.unhealthy_after)}"
                f" after a {durations.format_duration(policy.startup_grace)} grace")
        parts.append(f"{_named(going)} Unhealthy ({_said(book, going, plugin)}); {when}")
    if kept:
        parts.append(f"{_named(kept)} Unhealthy ({_said(book, kept, plugin)}); protected "
                     f"({protect}=true), so never replaced")
    return "; ".join(parts)


def _said(book: health.Book, ids: Sequence[str], plugin: str) -> str:
    """``Flavor.Healthy of flavor-vanilla: GET ...: 500 Internal Server Error``: what the
    probe said of each member named (of several: ``a: ..., b: ...``)."""
    said = [(iid, reason) for iid in ids[:NAMED] if (reason := book.reason(iid))]
    if not said:
        return f"Flavor.Healthy of {plugin}"
    if len(ids) == 1:
        return f"Flavor.Healthy of {plugin}: {said[0][1]}"
    return f"Flavor.Healthy of {plugin}: " + ", ".join(f"{iid}: {r}" for iid, r in said)


def _named(ids: Sequence[str]) -> str:
    """``a, b and 3 more are`` / ``a is``."""
    named = ", ".join(ids[:NAMED]) + (f" and {len(ids) - NAMED} more" if len(ids) > NAMED
                                      else "")
    return f"{named} {'is' if len(ids) == 1 else 'are'}"


def _members(count: int) -> str:
    return f"{count} member" if count == 1 else f"{count} members"
