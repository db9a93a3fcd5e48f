"""Which unhealthy members to replace, within the remediation budget; pure.

A member is judged only after its ``StartupGrace``; it is replaced once it has been
Unhealthy for ``UnhealthyAfter`` (counted from the end of its grace at the earliest).
``Unknown`` is never a reason. When more members than ``MaxUnhealthy`` are Unhealthy at
once, nothing is replaced and the verdict says why: a broken health check or a network
partition must not destroy the fleet. The decision step (``decide``) calls :func:`judge`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from infrakit import durations
from infrakit.group import config, health, tags
from infrakit.spi import flavor, instance


@dataclass(frozen=True, slots=True)
class Verdict:
    """What remediation wants this round."""

    replace: list[tuple[instance.Description, float]] = field(default_factory=list)
    """Members to replace, each with how long it has been unhealthy."""
    unhealthy: int = 0
    """Members judged Unhealthy now."""
    hold: str | None = None
    """Why nothing is replaced although members are unhealthy."""


def judge(members: Sequence[instance.Description], *, policy: config.HealthPolicy,
          protect_tag: str, book: health.Book, first_seen: Mapping[str, float],
          now: float) -> Verdict:
    """Decide replacements among ``members`` (probing off → none)."""
    if policy.interval <= 0:
        return Verdict()
    sick: list[tuple[instance.Description, float]] = []
    for member in members:
        since = book.since(member.id)
        if since is None or book.verdict(member.id) != flavor.Health.UNHEALTHY:
            continue
        graced = first_seen.get(member.id, now) + policy.startup_grace
        if now < graced:
            continue
        sick.append((member, now - max(since, graced)))
    if not sick:
        return Verdict()
    budget = config.resolve(policy.max_unhealthy, len(members), round_up=False)
    if len(sick) > budget:
        return Verdict(unhealthy=len(sick), hold=(
            f"holding because {len(sick)}/{len(members)} unhealthy exceeds budget "
            f"{policy.max_unhealthy}"))
    due = [(m, spell) for m, spell in sick
           if spell >= policy.unhealthy_after and not tags.protected(m, protect_tag)]
    return Verdict(replace=due, unhealthy=len(sick))


def reason(spell: float) -> str:
    """The reason a replacement is recorded with."""
    return f"unhealthy for {durations.format_duration(spell)}"
