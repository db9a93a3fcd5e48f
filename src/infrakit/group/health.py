"""What the controller knows of each member's health: the last verdict and since when.

The supervisor records every Flavor.Healthy answer here; remediation, the rolling
update's health gate and the UnhealthyFirst order read it. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from infrakit.spi import flavor


@dataclass(slots=True)
class Record:
    """One member's latest verdict."""

    verdict: flavor.Health
    since: float
    """When the verdict last changed (monotonic seconds)."""
    probed: float
    """When it was last asked."""
    healthy_once: bool = False
    """True once any probe said Healthy (a member never Healthy that dies, died young)."""
    reason: str = ""
    """What the probe said with its last verdict (ext; ``""`` when it said nothing)."""


class Book:
    """Verdicts by instance ID."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}

    def record(self, member: str, verdict: flavor.Health, now: float, *,
               reason: str = "") -> None:
        """Note a probe's answer (and what it said); the ``since`` time moves only when the
        verdict changes."""
        found = self._records.get(member)
        if found is None or found.verdict != verdict:
            once = verdict == flavor.Health.HEALTHY or (found is not None and found.healthy_once)
            self._records[member] = Record(verdict=verdict, since=now, probed=now,
                                           healthy_once=once, reason=reason)
        else:
            found.probed = now
            found.reason = reason

    def verdict(self, member: str) -> flavor.Health:
        """The last verdict; ``UNKNOWN`` when never probed."""
        found = self._records.get(member)
        return found.verdict if found is not None else flavor.Health.UNKNOWN

    def since(self, member: str) -> float | None:
        """When the current verdict began, or ``None`` when never probed."""
        found = self._records.get(member)
        return found.since if found is not None else None

    def reason(self, member: str) -> str:
        """What the last probe said with its verdict (``""``: nothing, or never probed)."""
        found = self._records.get(member)
        return found.reason if found is not None else ""

    def healthy_once(self, member: str) -> bool:
        """True when some probe ever said the member is Healthy."""
        found = self._records.get(member)
        return found is not None and found.healthy_once

    def due(self, member: str, now: float, interval: float) -> bool:
        """True when the member was never probed or its last probe is ``interval`` old."""
        found = self._records.get(member)
        return found is None or now - found.probed >= interval

    def keep_only(self, members: Collection[str]) -> None:
        """Forget members that are gone."""
        for gone in [m for m in self._records if m not in members]:
            del self._records[gone]
