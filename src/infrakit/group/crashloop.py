"""Crash loops: members that keep dying young are a failure to report, not a heal to repeat.

A *slot* is what a replacement refills: a logical ID for pets, the whole group for cattle
(:data:`CATTLE`). Each young death of a slot's member (it vanished, or was replaced as
unhealthy, before it was ever Healthy or within ``YoungAge`` of its creation) is noted in
the :class:`Ledger` with its reason. Past ``Threshold`` deaths within ``Window`` the slot
is *looping*: it is not re-created before its backoff ends (``BackoffBase``, doubling with
each further death, capped at ``MaxBackoff``), and the group's phase is ``CrashLooping``.

The ledger is a wire type: it travels inside the persisted rolling-update state
(``rolling.UpdateState.Crashes``), so a restart of the group plugin or a manager failover
resumes the counts and the backoff instead of starting afresh. Times in it are wall-clock
seconds for that reason. It belongs to one config hash: a new spec starts an empty one.
The supervisor records deaths and asks which slots wait; everything here is pure.
"""

from __future__ import annotations

from pydantic import Field

from infrakit import durations
from infrakit.group import config
from infrakit.spi.wire import Wire

CATTLE = "*"
"""The one slot of a scaled group."""


class Slot(Wire):
    """The young deaths of one slot."""

    deaths: list[float] = Field(default_factory=list)
    """When each young death within the window was noted (seconds since the epoch)."""
    reason: str = ""
    """The latest death's reason: ``exited or vanished 2s after it was created``, ..."""
    retry_at: float = 0.0
    """Not re-created before this (seconds since the epoch); 0 when not backing off."""
    backoff: float = 0.0
    """The latest wait imposed (seconds)."""


class Ledger(Wire):
    """(ext) The crash-loop counts of one group, for one config hash."""

    config: str = ""
    """The config hash the counts are for."""
    slots: dict[str, Slot] = Field(default_factory=dict)
    """By logical ID, or ``*`` for a scaled group."""


def for_config(ledger: Ledger | None, sha: str) -> Ledger:
    """The ledger to keep for config ``sha``: this one, or a fresh one for a new spec."""
    if ledger is not None and ledger.config == sha:
        return ledger
    return Ledger(config=sha)


def died(ledger: Ledger, slot: str, *, now: float, reason: str,
         policy: config.CrashLoopPolicy) -> Ledger:
    """Note a young death of ``slot``'s member at ``now``; past the threshold, back off."""
    found = ledger.slots.get(slot, Slot())
    deaths = [*_within(found.deaths, now, policy.window), now]
    over = len(deaths) - policy.threshold
    backoff = min(policy.max_backoff, policy.backoff_base * 2 ** min(over, 62)) \
        if over >= 0 else 0.0
    updated = Slot(deaths=deaths, reason=reason, retry_at=now + backoff if backoff else 0.0,
                   backoff=backoff)
    return ledger.model_copy(update={"slots": {**ledger.slots, slot: updated}})


def recovered(ledger: Ledger, slot: str) -> Ledger:
    """Forget ``slot``: one of its members outlived ``YoungAge`` (and turned Healthy)."""
    if slot not in ledger.slots:
        return ledger
    return ledger.model_copy(
        update={"slots": {k: v for k, v in ledger.slots.items() if k != slot}})


def pruned(ledger: Ledger, *, now: float, policy: config.CrashLoopPolicy) -> Ledger:
    """Without the deaths older than the window (and the slots left with none)."""
    slots = {}
    changed = False
    for name, found in ledger.slots.items():
        deaths = _within(found.deaths, now, policy.window)
        if len(deaths) != len(found.deaths):
            changed = True
            if not deaths and found.retry_at <= now:
                continue
            found = found.model_copy(update={"deaths": deaths})
        slots[name] = found
    return ledger.model_copy(update={"slots": slots}) if changed else ledger


def waiting(ledger: Ledger, *, now: float) -> dict[str, float]:
    """The slots backing off now, with the seconds left."""
    return {name: found.retry_at - now for name, found in ledger.slots.items()
            if found.retry_at > now}


def looping(ledger: Ledger, *, now: float, policy: config.CrashLoopPolicy) -> list[str]:
    """The slots with ``Threshold`` young deaths or more within the window, sorted."""
    return sorted(name for name, found in ledger.slots.items()
                  if len(_within(found.deaths, now, policy.window)) >= policy.threshold)


def explain(ledger: Ledger, slots: list[str], *, now: float,
            policy: config.CrashLoopPolicy) -> str:
    """The reason of the ``CrashLooping`` phase: which slots, how often, the last reason,
    when the next attempt is."""
    parts = []
    for name in slots:
        found = ledger.slots[name]
        what = "members" if name == CATTLE else f"logical ID {name}"
        count = len(_within(found.deaths, now, policy.window))
        left = found.retry_at - now
        when = (f"next attempt in {durations.format_duration(round(left, 1))}" if left > 0
                else "retrying now")
        parts.append(f"{what} died young {count} times within "
                     f"{durations.format_duration(policy.window)} (last: {found.reason}); "
                     f"{when}")
    return "; ".join(parts)


def _within(deaths: list[float], now: float, window: float) -> list[float]:
    return [when for when in deaths if now - when < window]
