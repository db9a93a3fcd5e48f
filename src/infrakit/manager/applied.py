"""What ``infrakit up`` last applied from its config file, and whether a start applies the
file or keeps the store.

The store numbers each group's committed specs (:class:`.store.HistoryEntry`). Each time
``infrakit up`` (:mod:`.embedded`) commits a group from its file, or finds the file's spec in
the store, it records a :class:`Mark`: the store version that holds the file's spec, and the
hash of that spec. Marks live in ``applied.json`` beside the file store's documents; a store
without it loads as before (nothing recorded yet). At the next start :func:`decide` compares,
per group, the file, the store and the mark:

- the group is not in the store: commit the file (``create``);
- the store holds the file's spec: nothing to commit (``same``);
- the file changed since its last application and the store did not: commit the file, an
  edit of the config (``apply``);
- the store changed since (set-size, rollback, a commit through the CLI, a rolling update
  started by one), whether or not the file changed too, or nothing says when the file was
  applied: keep the store, and say so (``keep``). ``up --apply`` commits the file anyway
  (``forced``).

The file's spec committed by other means (``infrakit apply``, ``manager commit``) is an
application too: the history shows at which version. So only a file spec the store never
held since the mark can be new, and the file is applied only when the store is exactly as
the file last left it. The store records no cause for a change; :func:`cause` infers one from
the history. All pure but :func:`load` and :func:`save`.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import pathlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pydantic
from pydantic import Field

from infrakit.manager import store, store_file
from infrakit.spi import group
from infrakit.spi.wire import Wire, omit_if_none

FILE = "applied.json"
"""The marks, in the file store's directory."""
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class Mark(Wire):
    """A group's last application of the config file."""

    version: int = Field(ge=1)
    """The store version (history) that holds the file's spec."""
    hash: str
    """:func:`spec_hash` of the file's spec then."""
    source: str = ""
    """The config file (path or URL)."""
    time: datetime | None = omit_if_none()
    """When it was recorded (UTC)."""


MARKS: pydantic.TypeAdapter[dict[str, Mark]] = pydantic.TypeAdapter(dict[str, Mark])


def spec_hash(spec: group.Spec) -> str:
    """A hash of the whole group spec (key order does not count)."""
    text = json.dumps(spec.to_wire(), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def load(directory: pathlib.Path) -> dict[group.ID, Mark]:
    """The marks in ``directory`` (``{}`` when none); corrupt: :class:`errors.InvalidError`."""
    marks = store_file.read(directory / FILE, MARKS, {})
    return {group.ID(gid): each for gid, each in marks.items()}


def save(directory: pathlib.Path, marks: dict[group.ID, Mark], *,
         token: store.TokenSource | None) -> None:
    """Replace the marks (a corrupt file is kept aside); fenced by ``token``."""
    path = directory / FILE
    store.require_token(token, action=f"write {path}")
    store_file.read_to_replace(path, MARKS, {}, force=True)
    store_file.write_atomic(path, store.encode({gid: m.to_wire() for gid, m in marks.items()}))


class Action(enum.StrEnum):
    CREATE = "create"
    """Not in the store: commit the file."""
    SAME = "same"
    """The store holds the file's spec: nothing to commit."""
    APPLY = "apply"
    """The file changed since its last application, the store did not: commit the file."""
    FORCED = "forced"
    """``--apply``: commit the file whatever the store holds."""
    KEEP = "keep"
    """The store changed since the file's last application: keep it."""


COMMITS = (Action.CREATE, Action.APPLY, Action.FORCED)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a start does with one group of the file, and why (:meth:`explain`)."""

    gid: group.ID
    action: Action
    applied: int | None
    """The store version the file's spec (as it is now) was last applied as; None when the
    file changed since (or nothing says)."""
    recorded: Mark | None
    """The mark found."""
    newest: store.HistoryEntry | None
    """The store's newest version of the group (None: no history)."""
    cause: str
    """What made the newest version, inferred (:func:`cause`)."""

    @property
    def commits(self) -> bool:
        return self.action in COMMITS

    def explain(self) -> str | None:
        """One line for the person starting ``up``; None when the commit line says it all."""
        if self.action is Action.CREATE:
            return None
        if self.action is Action.SAME:
            version = f"v{self.newest.version}" if self.newest else "spec"
            return f"{self.gid}: the store's {version} is the file's spec; nothing to apply"
        if self.action is Action.APPLY:
            return (f"{self.gid}: the file changed since its v{_version(self.recorded)} was "
                    "applied, and the store did not; applying it")
        if self.action is Action.FORCED:
            return f"{self.gid}: --apply: applying the file over {self._store(whose=True)}"
        kept = f"{self.gid}: {self._store()}"
        if self.applied is not None:
            return (f"{kept}; the file's v{self.applied} was not re-applied; "
                    "use --apply to apply the file")
        if self.recorded is not None:
            return (f"{kept}, and the file changed since its v{self.recorded.version} was "
                    "applied; the file was not applied; use --apply to apply the file")
        return (f"{kept}, and no application of this file is recorded; the file was not "
                "applied; use --apply to apply the file")

    def _store(self, *, whose: bool = False) -> str:
        if self.newest is None:
            return "the store's spec" if whose else \
                "the store holds another spec (its history is unreadable)"
        when = self.newest.time.strftime(TIME_FORMAT)
        has = "the store's" if whose else "the store has"
        return f"{has} v{self.newest.version} ({self.cause} at {when})"


def _version(mark: Mark | None) -> int:
    return mark.version if mark is not None else 0


def decide(wanted: group.Spec, *, stored: group.Spec | None,
           history: Sequence[store.HistoryEntry], recorded: Mark | None,
           force: bool = False) -> Decision:
    """What to do with the file's spec ``wanted`` of a group the store holds as ``stored``
    (None: absent), with its ``history`` (oldest first) and the ``recorded`` mark."""
    newest = history[-1] if history else None
    applied = last_application(wanted, history=history, recorded=recorded)
    if stored is None:
        action = Action.CREATE
    elif force:
        action = Action.FORCED
    elif _same(stored.to_wire(), wanted):
        action = Action.SAME
    elif (applied is None and recorded is not None and newest is not None
          and newest.version == recorded.version):
        action = Action.APPLY
    else:
        action = Action.KEEP
    return Decision(wanted.id, action, applied=applied, recorded=recorded, newest=newest,
                    cause=cause(history))


def last_application(wanted: group.Spec, *, history: Sequence[store.HistoryEntry],
                     recorded: Mark | None) -> int | None:
    """The store version the file's spec, as it is now, was last applied as: the mark's
    when its hash is this spec's, or a later version that holds this very spec (committed
    by ``infrakit apply`` or the CLI). None when the file changed since the mark (an older
    version holding the spec is a file edited back, not an application), or when nothing
    says."""
    seen = max((e.version for e in history if _same(e.spec.properties, wanted)), default=None)
    if recorded is not None and recorded.hash == spec_hash(wanted):
        return max(recorded.version, seen or 0)
    if seen is not None and seen > _version(recorded):
        return seen
    return None


def cause(history: Sequence[store.HistoryEntry]) -> str:
    """What made the newest version, inferred from the history (the store keeps no cause):
    ``rollback to vN`` (it equals an earlier version), ``resize`` (only Allocation.Size
    changed: set-size or destroy-instances), else ``commit``."""
    if not history:
        return "commit"
    newest = history[-1].spec.properties
    for earlier in reversed(history[:-1]):
        if earlier.spec.properties == newest:
            return f"rollback to v{earlier.version}"
    if len(history) > 1 and _without_size(history[-2].spec.properties) == _without_size(newest):
        return "resize"
    return "commit"


def _same(properties: Any, wanted: group.Spec) -> bool:
    return bool(properties == wanted.to_wire())


def _without_size(properties: Any) -> Any:
    if not isinstance(properties, dict) or not isinstance(properties.get("Properties"), dict):
        return properties
    inner = dict(properties["Properties"])
    allocation = inner.get("Allocation")
    if not isinstance(allocation, dict) or "Size" not in allocation:
        return properties
    inner["Allocation"] = {k: v for k, v in allocation.items() if k != "Size"}
    return {**properties, "Properties": inner}
