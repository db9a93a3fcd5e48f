"""What a commit will do to a group, and the sentence that says so (v0.5's exact texts); pure.

CommitGroup answers with :meth:`Plan.explain`. The texts are compared by scripts and by
InfraKit's own CLI, so they are exactly the original's, including ``1 instances``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infrakit.group import config, tags
from infrakit.spi import instance


@dataclass(frozen=True, slots=True)
class Plan:
    """The effect of committing a spec."""

    size: int
    """The declared size after the commit."""
    new_group: bool = False
    """The group was not managed before."""
    size_change: int = 0
    """New declared size minus the old one."""
    roll: int = 0
    """Members a rolling update will replace."""
    adjust: bool = False
    """The spec changed in a way that restarts no member."""
    added_ids: int = 0
    """Pets: logical IDs that are new."""
    removed_ids: int = 0
    """Pets: logical IDs that were dropped."""

    def explain(self) -> str:
        """The CommitGroup ``Details`` text."""
        if self.new_group:
            return f"Managing {self.size} instances"
        if self.added_ids and self.removed_ids:
            text = (f"Adding {self.added_ids} instances for new logical IDs, then terminating "
                    f"{self.removed_ids} instances whose logical IDs were removed")
            return text + self._then_roll()
        if self.added_ids:
            return self._adding(self.added_ids) + self._then_roll()
        if self.removed_ids:
            return self._terminating(self.removed_ids) + self._then_roll()
        return self._cattle()

    def _cattle(self) -> str:
        change = self.size_change
        if self.roll == 0:
            if change < 0:
                return self._terminating(-change)
            if change > 0:
                return self._adding(change)
            if self.adjust:
                return "Adjusting the instance configuration, no restarts necessary"
            return "Noop"
        if change < 0:
            return self._terminating(-change) + self._then_roll()
        if change > 0:
            return (f"{self._rolling()}, then adding {change} instances to increase the group "
                    f"size to {self.size}")
        return self._rolling()

    def _rolling(self) -> str:
        return f"Performing a rolling update on {self.roll} instances"

    def _then_roll(self) -> str:
        return f", then performing a rolling update on {self.roll} instances" if self.roll else ""

    def _adding(self, count: int) -> str:
        return f"Adding {count} instances to increase the group size to {self.size}"

    def _terminating(self, count: int) -> str:
        return f"Terminating {count} instances to reduce the group size to {self.size}"


def plan(previous: config.Properties | None, desired: config.Properties, *,
         members: Sequence[instance.Description], sha: str, previous_raw: Any = None,
         desired_raw: Any = None) -> Plan:
    """The plan of committing ``desired`` over ``previous`` (``None``: a new group).

    ``members`` are the group's instances now; those on another config (bootstrap and
    protected ones aside) will be rolled. ``*_raw``: the Properties as committed, to tell
    a change that restarts nothing from no change at all.
    """
    if previous is None:
        return Plan(size=desired.size, new_group=True)
    protect = desired.scale.protect_tag
    stale = [m for m in members
             if not tags.is_current(m, sha) and not tags.protected(m, protect)]
    ids, old_ids = desired.logical_ids, previous.logical_ids
    added = removed = 0
    if ids is not None:
        declared = set(ids)
        stale = [m for m in stale if m.logical_id in declared]
        added = len(declared - set(old_ids or []))
        removed = len(set(old_ids or []) - declared)
    return Plan(size=desired.size, size_change=desired.size - previous.size,
                roll=min(len(stale), desired.size), adjust=previous_raw != desired_raw,
                added_ids=added, removed_ids=removed)
