"""The in-flight ledger of one group: creations and removals under way, and their effects
not yet seen in a listing.

The supervisor notes here every creation and removal it starts and ends; each reconcile
nets its listing against the ledger (:meth:`Ledger.account`), so that a slow or eventually
consistent instance plugin never causes a second create or destroy: a member created but
not yet listed is counted (``expected_new``), one destroyed but still listed is not
(``expected_gone``), until a listing shows it or a TTL passes. A plugin may also list a new
member before its Provision returns (Docker lists a container once created, before it is
started): a member first listed while creations of its kind are in flight *claims* one of
them and counts as that creation, not yet as a member, until the creation ends: never twice,
and never as up before its Provision says so.
Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from infrakit.spi import instance


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The ledger at one moment, for deciding and reporting (see :mod:`.phase`)."""

    creating: tuple[instance.LogicalID | None, ...] = ()
    """Creations in flight (their logical IDs; ``None`` for cattle)."""
    removing: int = 0
    """Removals in flight (drain and destroy)."""
    doomed: int = 0
    """Members DestroyInstances is removing."""
    expected: int = 0
    """Effects not yet listed: members created but not listed, destroyed but still listed."""

    @property
    def idle(self) -> bool:
        """True when nothing is in flight and nothing is expected."""
        return not (self.creating or self.removing or self.doomed or self.expected)


@dataclass(frozen=True, slots=True)
class Vanished:
    """A member gone, not by our hand."""

    member: instance.Description
    first_seen: float
    """When it was created or first listed (monotonic seconds)."""
    listed: bool
    """False when it was created and never listed (it died at once, or the instance plugin
    lost it)."""


@dataclass(slots=True)
class Accounted:
    """A listing netted against the ledger."""

    members: dict[str, instance.Description]
    """Members present: listed, or created and not yet listed; those going are left out."""
    unobserved: frozenset[str]
    """Members created but not yet listed."""
    vanished: list[Vanished] = field(default_factory=list)
    """Members present at the last account that are gone now, not by our hand (they died,
    or were created and never listed within the TTL)."""


class Ledger:
    """What one group has in flight and expects; the supervisor owns one."""

    def __init__(self) -> None:
        self.creating: dict[int, instance.LogicalID | None] = {}
        """Creations in flight by token."""
        self.claims: dict[int, str] = {}
        """Creations in flight whose member is listed already: token → member ID."""
        self.removing: set[str] = set()
        """Members being drained and destroyed by a decision."""
        self.doomed: set[str] = set()
        """Members DestroyInstances is removing: counted, but never chosen by a decision."""
        self.expected_new: dict[str, tuple[float, instance.Description]] = {}
        """Created, not yet listed: when, and the description to count them by."""
        self.expected_gone: dict[str, float] = {}
        """Destroyed, maybe still listed: since when."""
        self.first_seen: dict[str, float] = {}
        """When each member was created or first listed (monotonic seconds)."""
        self.present: dict[str, instance.Description] = {}
        """The members as last accounted, kept current as creations and removals end."""
        self._gone_by_us: set[str] = set()
        self._tokens = itertools.count()

    # Work in flight ------------------------------------------------------------------

    def creation_started(self, logical_id: instance.LogicalID | None) -> int:
        """Note a creation; return its token (for :meth:`creation_ended`)."""
        token = next(self._tokens)
        self.creating[token] = logical_id
        return token

    def creation_ended(self, token: int) -> None:
        del self.creating[token]
        self.claims.pop(token, None)

    def created(self, member: instance.Description, now: float, *,
                token: int | None = None) -> None:
        """Creation ``token`` succeeded: count the member until a listing shows it."""
        if token is not None:
            self._settle(token, member.id)
        self.first_seen[member.id] = now
        self.expected_new[member.id] = (now, member)
        self.present[member.id] = member

    def removal_started(self, iid: str) -> None:
        self.removing.add(iid)

    def removal_ended(self, iid: str) -> None:
        self.removing.discard(iid)

    def destroyed(self, iid: str, now: float) -> None:
        """A destroy succeeded: do not count the member, even while it is still listed."""
        self.expected_gone[iid] = now
        self._gone_by_us.add(iid)
        self.present.pop(iid, None)

    def doom(self, ids: Iterable[str]) -> None:
        """DestroyInstances is removing these members."""
        self.doomed.update(ids)

    def spare(self, iid: str) -> None:
        """DestroyInstances is done with this member (destroyed or not)."""
        self.doomed.discard(iid)

    # Netting a listing -----------------------------------------------------------------

    def account(self, listed: Sequence[instance.Description], now: float, *,
                ttl: float) -> Accounted:
        """What is there, net of the work in flight and of its effects not yet listed;
        expectations older than ``ttl`` are dropped."""
        observed: dict[str, instance.Description] = {m.id: m for m in listed}
        if self.creating:
            self._claim(observed)
        unlisted: set[str] = set()
        for iid, (when, _) in list(self.expected_new.items()):
            if iid in observed or now - when > ttl:
                del self.expected_new[iid]
                if iid not in observed:
                    unlisted.add(iid)  # its TTL passed: never listed
        for iid, when in list(self.expected_gone.items()):
            if iid not in observed or now - when > ttl:
                del self.expected_gone[iid]
        members = dict(observed)
        for going in (self.removing | self.expected_gone.keys()) & members.keys():
            del members[going]
        for creating in self.claims.values():
            members.pop(creating, None)  # counted as its creation until that ends
        unobserved = frozenset(self.expected_new)
        members.update((iid, m) for iid, (_, m) in self.expected_new.items())
        # Set operations, not loops: this runs over every member at every poll.
        self.first_seen.update(dict.fromkeys(members.keys() - self.first_seen.keys(), now))
        gone = self.first_seen.keys() - members.keys() - self.removing
        vanished = [Vanished(self.present[iid], self.first_seen[iid],
                             listed=iid not in unlisted)
                    for iid in sorted(gone - self._gone_by_us)
                    if iid in self.present and iid not in self.doomed]
        for iid in gone:
            del self.first_seen[iid]
        self._gone_by_us -= gone
        self._gone_by_us &= self.expected_gone.keys() | self.removing | self.doomed
        self.present = members
        return Accounted(members=members, unobserved=unobserved, vanished=vanished)

    def _claim(self, observed: dict[str, instance.Description]) -> None:
        """Members listed for the first time while creations are in flight claim one of
        their kind (same logical ID; ``None`` for cattle)."""
        fresh = observed.keys() - self.first_seen.keys() - set(self.claims.values())
        if not fresh:
            return
        free: dict[instance.LogicalID | None, list[int]] = {}
        for token, lid in self.creating.items():
            if token not in self.claims:
                free.setdefault(lid, []).append(token)
        for iid in sorted(fresh):
            tokens = free.get(observed[iid].logical_id)
            if tokens:
                self.claims[tokens.pop(0)] = iid

    def _settle(self, token: int, iid: str) -> None:
        """Creation ``token`` made ``iid``: if another creation claimed ``iid``, that one
        takes over what ``token`` had claimed (or claims nothing: its member is unlisted)."""
        mine = self.claims.pop(token, None)
        other = next((t for t, claimed in self.claims.items() if claimed == iid), None)
        if other is None:
            return
        if mine is not None and mine != iid:
            self.claims[other] = mine
        else:
            del self.claims[other]

    # Reading ---------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True when nothing is in flight and nothing is expected."""
        return not (self.creating or self.removing or self.doomed or self.expected_new
                    or self.expected_gone)

    def existing(self) -> dict[str, instance.Description]:
        """The members now: the last account, with creations and removals ended since."""
        if not self.removing:
            return self.present
        return {iid: m for iid, m in self.present.items() if iid not in self.removing}

    def leaving(self) -> list[instance.Description]:
        """The members being removed now."""
        return [m for iid, m in self.present.items() if iid in self.removing]

    def snapshot(self) -> Snapshot:
        return Snapshot(creating=tuple(self.creating.values()), removing=len(self.removing),
                        doomed=len(self.doomed),
                        expected=len(self.expected_new) + len(self.expected_gone))
