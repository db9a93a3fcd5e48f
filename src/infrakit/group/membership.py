"""Missing and surplus members: cattle by count, pets by logical ID; pure.

Cattle: add members up to the size; above it, remove in ``Scale.Policy`` order.
Pets: one member per logical ID (created with ``Spec.LogicalID``); duplicates of an ID
are reduced to one; members whose logical ID is not declared are removed one at a time,
and only once every declared ID has its member (so a changed ID list adds the new
members first, then removes the old ones). Protected members are never chosen.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from infrakit.group import tags
from infrakit.spi import instance


@dataclass(frozen=True, slots=True)
class Create:
    """A member to add."""

    logical_id: instance.LogicalID | None
    """Its pet identity (``None`` for cattle)."""
    reason: str
    """Why, e.g. ``count 4 < 5``."""


@dataclass(frozen=True, slots=True)
class Removal:
    """A member to drain and destroy."""

    member: instance.Description
    reason: str
    """Why, e.g. ``count 6 > 5``."""
    verb: str = "destroyed"
    """How the action reads in the status: ``destroyed`` or ``replaced``."""
    cause: str = ""
    """Why it is replaced: ``unhealthy`` (remediation), ``rolling`` (a rolling update), or
    ``""`` (membership: surplus, duplicate, undeclared logical ID)."""


@dataclass(slots=True)
class Changes:
    """Membership changes of one round."""

    creates: list[Create] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    """Why something that should go cannot (protected members)."""


def missing(*, size: int, total: int) -> list[Create]:
    """Members to add so that ``total`` reaches ``size``."""
    return [Create(None, f"count {total + n} < {size}") for n in range(max(0, size - total))]


def surplus(*, cap: int, total: int, removable: Sequence[instance.Description],
            protect_tag: str) -> Changes:
    """Members to remove so that ``total`` comes down to ``cap``; ``removable`` is ordered."""
    excess = total - cap
    if excess <= 0:
        return Changes()
    chosen = removable[:excess]
    changes = Changes(removals=[Removal(m, f"count {total} > {cap}") for m in chosen])
    if len(chosen) < excess:
        changes.holds.append(
            f"holding {excess - len(chosen)} surplus members: they are protected "
            f"(tag {protect_tag}=true) or not yet listed")
    return changes


@dataclass(slots=True)
class Pets:
    """Membership of a quorum group this round."""

    changes: Changes
    chosen: dict[str, instance.Description]
    """The member kept for each declared logical ID that has one."""


def pets(*, ids: Sequence[str], members: Sequence[instance.Description],
         pending: Collection[str | None], removing: int, sha: str, protect_tag: str,
         locked: Collection[str]) -> Pets:
    """One member per declared logical ID."""
    declared = set(ids)
    by_id: dict[str, list[instance.Description]] = {}
    unknown: list[instance.Description] = []
    for member in members:
        if member.logical_id is not None and member.logical_id in declared:
            by_id.setdefault(member.logical_id, []).append(member)
        else:
            unknown.append(member)

    def removable(m: instance.Description) -> bool:
        return m.id not in locked and not tags.protected(m, protect_tag)

    changes, chosen = Changes(), dict[str, instance.Description]()
    for lid, found in by_id.items():
        keep, *extra = sorted(found, key=lambda m: (
            not tags.protected(m, protect_tag), not tags.is_current(m, sha), m.id))
        chosen[lid] = keep
        changes.removals += [Removal(m, f"it duplicates logical ID {lid} (keeping {keep.id})")
                             for m in extra if removable(m)]
    changes.creates = [Create(instance.LogicalID(lid), f"logical ID {lid} has no instance")
                       for lid in ids if lid not in by_id and lid not in pending]
    settled = not changes.creates and not pending and not removing and not changes.removals
    candidates = sorted((m for m in unknown if removable(m)), key=lambda m: m.id)
    if settled and candidates:
        first = candidates[0]
        why = (f"its logical ID {first.logical_id} is not in the allocation"
               if first.logical_id is not None else "it has no logical ID")
        changes.removals.append(Removal(first, why))
    if len(candidates) < len(unknown):
        changes.holds.append(f"holding {len(unknown) - len(candidates)} members with "
                             "undeclared logical IDs: they are protected or not yet listed")
    return Pets(changes=changes, chosen=chosen)
