"""Watching one group for crash loops: the stateful side of :mod:`.crashloop`.

The supervisor owns one :class:`Watch` and tells it, at each reconcile, which members
vanished (:meth:`Watch.vanished`), which it is replacing as Unhealthy
(:meth:`Watch.replacements`) and which it sees alive (:meth:`Watch.recoveries`). The watch
decides which of these deaths were young, keeps the crash-loop :class:`crashloop.Ledger`
(pure; persisted with the rolling-update state) and records the deaths, backoffs and
recoveries as actions. The supervisor asks it which slots wait (:meth:`Watch.waiting`).
"""

from __future__ import annotations

from collections.abc import Collection

from infrakit import durations
from infrakit.group import clock, crashloop, decide, health, inflight, roster
from infrakit.group import status as status_
from infrakit.group.target import Target
from infrakit.spi import flavor, instance


class Watch:
    """The crash-loop counts of one group and the deaths that make them."""

    def __init__(self, ledger: crashloop.Ledger, *, recorder: status_.Recorder,
                 book: health.Book, source: clock.Clock) -> None:
        """``ledger``: the counts to start from (a saved state's, or a fresh one)."""
        self.ledger = ledger
        self.recorder = recorder
        self.book = book
        self.clock = source
        self._replaced: set[str] = set()
        self._first_account: float | None = None
        self._counted: set[str] = set()  # the slots that had a death counted this round

    @property
    def slots(self) -> dict[str, crashloop.Slot]:
        """The slots with young deaths (empty: nothing to watch for)."""
        return self.ledger.slots

    def retarget(self, sha: str, *, resumed: crashloop.Ledger | None) -> None:
        """A new commit: take the saved counts when given, keep them for config ``sha``
        (a new config starts afresh)."""
        if resumed is not None:
            self.ledger = resumed
        self.ledger = crashloop.for_config(self.ledger, sha)

    def accounted(self, now: float) -> None:
        """A listing was accounted at ``now``: members seen at the first one were born we
        do not know when (they never count as recovered)."""
        if self._first_account is None:
            self._first_account = now
        self._counted.clear()

    def waiting(self, *, now: float) -> Collection[str]:
        """The slots backing off at ``now`` (wall-clock): not to be re-created yet."""
        return crashloop.waiting(self.ledger, now=now).keys()

    def pruned(self, target: Target, *, now: float) -> None:
        """Forget the deaths older than the window."""
        self.ledger = crashloop.pruned(self.ledger, now=now,
                                       policy=target.props.health.crash_loop)

    # Deaths ----------------------------------------------------------------------------

    def vanished(self, target: Target, gone: inflight.Vanished, *, now: float,
                 ttl: float) -> None:
        """A member vanished (not by our hand): a death if it was young."""
        age = now - gone.first_seen
        if not self._young(target, gone.member, age=age):
            return
        reason = (f"created, then not listed within {durations.format_duration(ttl)}: it "
                  "exited or vanished at once" if not gone.listed else
                  f"exited or vanished {durations.format_duration(round(age, 1))} after "
                  "it appeared")
        self._died(target, gone.member, reason=reason)

    def replacements(self, target: Target, decision: decide.Decision, *,
                     ledger: inflight.Ledger, now: float) -> bool:
        """Note the young deaths among the members replaced as Unhealthy (each member once,
        however often its removal is retried); True when one was noted."""
        self._replaced &= ledger.present.keys()
        noted = False
        for removal in decision.removals:
            member = removal.member
            if removal.cause != "unhealthy" or member.id in self._replaced:
                continue
            age = now - ledger.first_seen.get(member.id, now)
            self._replaced.add(member.id)
            if self._young(target, member, age=age):
                said = self.book.reason(member.id)
                answer = f"Unhealthy: {said}" if said else "Unhealthy"
                self._died(target, member, reason=(
                    f"replaced as Unhealthy {durations.format_duration(round(age, 1))} after "
                    f"it appeared: Flavor.Healthy of {target.props.flavor.plugin} answered "
                    f"{answer} ({removal.reason})"))
                noted = True
        return noted

    def recoveries(self, target: Target, view: decide.View, *, now: float,
                   wall: float) -> None:
        """Forget the slots whose member, born after the last death, outlived YoungAge
        (Healthy, if probed)."""
        if not self.ledger.slots:
            return
        policy, probed = target.props.health, target.props.health.interval > 0
        clocks = roster.Clocks(monotonic=now, wall=wall)
        for slot, found in list(self.ledger.slots.items()):
            last = max(found.deaths, default=0.0)
            for member in view.members.values():
                born = view.first_seen.get(member.id)
                if (born is None or born == self._first_account or member.id in view.unobserved
                        or _slot(target, member) != slot
                        or clocks.wall_of(born) <= last
                        or now - born < policy.crash_loop.young_age
                        or (probed and view.book.verdict(member.id) != flavor.Health.HEALTHY)):
                    continue
                self.ledger = crashloop.recovered(self.ledger, slot)
                age = durations.format_duration(policy.crash_loop.young_age)
                self.recorder.add("recovered", f"{_slot_name(slot)} recovered: {member.id} "
                                  f"outlived {age}", instance=member.id)
                break

    def _young(self, target: Target, member: instance.Description, *, age: float) -> bool:
        """Did a member of this ``age`` die young: before ``YoungAge``, or never Healthy
        although probed?"""
        policy = target.props.health
        return age < policy.crash_loop.young_age or (
            policy.interval > 0 and not self.book.healthy_once(member.id))

    def _died(self, target: Target, member: instance.Description, *, reason: str) -> None:
        """Note a young death; past the threshold its slot backs off (recorded)."""
        slot = _slot(target, member)
        self.recorder.add("died-young", f"{member.id} died young: {reason}",
                          instance=member.id)
        if slot is None:
            return  # an undeclared logical ID: it is not re-created anyway
        if slot in self._counted:
            # Cattle: members that die in the same round (a host lost, 10% killed at once)
            # are one event, not a loop; a loop is replacements dying round after round.
            return
        self._counted.add(slot)
        policy = target.props.health.crash_loop
        self.ledger = crashloop.died(crashloop.for_config(self.ledger, target.sha), slot,
                                     now=self.clock.time(), reason=reason, policy=policy)
        found = self.ledger.slots[slot]
        if found.backoff:
            self.recorder.add("crash-loop", (
                f"{_slot_name(slot)} died young {len(found.deaths)} times within "
                f"{durations.format_duration(policy.window)}: backing off "
                f"{durations.format_duration(found.backoff)} before re-creating"))


def _slot(target: Target, member: instance.Description) -> str | None:
    ids = target.props.logical_ids
    if ids is None:
        return crashloop.CATTLE
    return member.logical_id if member.logical_id in ids else None


def _slot_name(slot: str) -> str:
    return "members of the group" if slot == crashloop.CATTLE else f"logical ID {slot}"
