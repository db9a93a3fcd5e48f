"""The member rows of a group's status: who is there, their health, age, config and last
transition, then the creations in flight; pure.

The supervisor builds them when someone asks for the status (``describe``); a huge group
lists its first :data:`~infrakit.group.status.LIST_MEMBERS` members by ID and counts the
rest (the counts of :mod:`.phase` cover every member).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from infrakit.group import health, tags
from infrakit.group.status import LIST_MEMBERS, Member
from infrakit.spi import flavor, instance

SHORT = 7
"""Characters of a config hash shown where a version is not known."""
VERSIONS_KEPT = 16
"""Spec versions a group remembers (by config hash): more than rolling updates overlap."""


def short(sha: str) -> str:
    """A config hash as people read it."""
    return sha[:SHORT]


def label(sha: str, versions: Mapping[str, str]) -> str:
    """The spec version of config ``sha`` when known (``v3``), else its short hash."""
    version = versions.get(sha)
    return f"v{version}" if version and version[0].isdigit() else version or short(sha) or "?"


def noted(versions: Mapping[str, str], *, sha: str, version: str | None,
          saved: Mapping[str, str] | None = None) -> dict[str, str]:
    """The spec versions by config hash after a commit of config ``sha`` as ``version``:
    those ``saved`` (a restart), those known, then this one (the newest wins, e.g. after a
    rollback); the newest :data:`VERSIONS_KEPT` of them."""
    merged = {**(saved or {}), **versions}
    if version:
        merged.pop(sha, None)
        merged[sha] = version
    return dict(list(merged.items())[-VERSIONS_KEPT:])


@dataclass(frozen=True, slots=True)
class Clocks:
    """Monotonic and wall time at one moment: a member's age is monotonic, a row's times
    are wall-clock."""

    monotonic: float
    wall: float

    def wall_of(self, monotonic: float) -> float:
        return self.wall - (self.monotonic - monotonic)


@dataclass(frozen=True, slots=True)
class Rows:
    members: list[Member] = field(default_factory=list)
    more: int = 0
    """Members left out (over the limit)."""


def rows(*, members: Mapping[str, instance.Description],
         removing: Iterable[instance.Description],
         creating: Iterable[instance.LogicalID | None], first_seen: Mapping[str, float],
         book: health.Book, probed: bool, versions: Mapping[str, str], clocks: Clocks,
         waiting: Mapping[str, str] | None = None, limit: int = LIST_MEMBERS) -> Rows:
    """Every member (``running``, then ``removing``) by ID up to ``limit``, then the
    creations in flight (``creating``)."""
    found = [(m, "running") for m in members.values()]
    found += [(m, "removing") for m in removing]
    found.sort(key=lambda pair: pair[0].id)
    shown = found[:limit]
    waits = waiting or {}
    listed = [_row(m, state, first_seen=first_seen, book=book, probed=probed,
                   versions=versions, clocks=clocks, waiting=waits.get(m.id))
              for m, state in shown]
    listed += [Member(logical_id=lid, state="creating", transition="creating")
               for lid in creating]
    return Rows(members=listed, more=len(found) - len(shown))


def _row(member: instance.Description, state: str, *, first_seen: Mapping[str, float],
         book: health.Book, probed: bool, versions: Mapping[str, str],
         clocks: Clocks, waiting: str | None = None) -> Member:
    seen = first_seen.get(member.id)
    created = clocks.wall_of(seen) if seen is not None else None
    verdict, since = book.verdict(member.id), book.since(member.id)
    sha = tags.config_sha(member)
    when: float | None = created
    transition = "appeared"
    if since is not None and verdict != flavor.Health.UNKNOWN:
        transition, when = f"became {verdict.name.title()}", clocks.wall_of(since)
    return Member(id=member.id, logical_id=member.logical_id, state=state,
                  health=verdict.name.title() if probed else "", created=created,
                  config=short(sha), version=versions.get(sha), transition=transition,
                  since=when, waiting=waiting)
