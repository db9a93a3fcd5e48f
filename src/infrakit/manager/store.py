"""What a manager persists, and the :class:`Store` interface its backends implement.

Three things per store, all JSON:

- the **document** InfraKit v0.5 keeps, ``{"Groups": {gid: {"Plugin", "Properties"}}}``
  where ``Properties`` is the committed ``group.Spec`` (:class:`Document`);
- a per-group **history** of the last N committed entries, numbered from 1, oldest first
  (:class:`HistoryEntry`; ``manager history`` / ``manager rollback --to N``);
- a per-group opaque **state** blob: the in-flight rolling update that must survive
  failover. A group being destroyed has left the document, and its state says so
  (:func:`destroying`) until its members are gone: a leader that dies meanwhile leaves the
  destroy to the next.

Backends: :mod:`.store_file` (default) and :mod:`.store_etcd`. Both share the pure
parsing and history rules below, and the same safety rules: corrupt input raises
:class:`errors.InvalidError` naming the file or key and what is wrong, the last good
document stays in memory (:attr:`Store.last_good`), and nothing unparseable is ever
overwritten unless the caller passes ``force=True``. Writes are refused with
:class:`errors.NotLeaderError` when the store's leadership token is gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, TypeVar

import pydantic
from pydantic import BeforeValidator, Field

from infrakit import errors, validation
from infrakit.manager import leader
from infrakit.spi import group, plugin
from infrakit.spi.wire import Wire

DEFAULT_HISTORY = 10
"""How many committed entries a store keeps per group unless told otherwise."""

TokenSource = Callable[[], leader.Token | None]
"""Where a store asks, before every write, whether its manager still leads."""

State = dict[str, Any]
"""A group's opaque in-flight state (the rolling update's progress)."""


def _none_to_empty(value: Any) -> Any:
    # Go marshals a nil map as null.
    return {} if value is None else value


class Document(Wire):
    """The manager's global spec, exactly as InfraKit v0.5 stores it."""

    groups: Annotated[dict[group.ID, plugin.Spec], BeforeValidator(_none_to_empty)] = Field(
        default_factory=dict)
    """Each group's backend group plugin and its committed ``group.Spec`` (Properties)."""

    @pydantic.model_validator(mode="after")
    def _properties_are_group_specs(self) -> Document:
        for gid, entry in self.groups.items():
            try:
                spec = group.Spec.model_validate(entry.properties)
            except pydantic.ValidationError as e:
                raise ValueError(f"Groups.{gid}.Properties is not a group spec: "
                                 f"{explain(e)}") from None
            if spec.id != gid:
                raise ValueError(f"Groups.{gid}.Properties.ID is {spec.id!r}, expected {gid!r}")
        return self

    def group_spec(self, gid: group.ID) -> group.Spec:
        """The committed spec of one group; :class:`errors.NotFoundError` when absent."""
        entry = self.groups.get(gid)
        if entry is None:
            raise errors.NotFoundError(f"group {gid!r} is not in the store", id=gid)
        return group.Spec.model_validate(entry.properties)

    def with_group(self, spec: group.Spec, *, plugin_name: str) -> Document:
        """A copy with ``spec`` committed to the group plugin ``plugin_name``."""
        entry = plugin.Spec(plugin=plugin_name, properties=spec.to_wire())
        return self.model_copy(update={"groups": {**self.groups, spec.id: entry}})

    def without_group(self, gid: group.ID) -> Document:
        """A copy without the group (freed or destroyed)."""
        return self.model_copy(
            update={"groups": {k: v for k, v in self.groups.items() if k != gid}})


class HistoryEntry(Wire):
    """One committed version of a group."""

    version: int = Field(ge=1)
    """1 for the first commit of the group, then +1 per change; never reused."""
    time: datetime
    """When the store recorded it (UTC)."""
    spec: plugin.Spec
    """What was committed: ``{Plugin, Properties}`` as in the document."""


class Store(Protocol):
    """A manager's persistence. Only the leader writes; anyone may read."""

    @property
    def last_good(self) -> Document | None:
        """The last document read or written successfully, kept when the store goes bad."""

    async def load(self) -> Document:
        """The stored document (empty when none yet); :class:`errors.InvalidError` if corrupt."""

    async def save(self, doc: Document, *, force: bool = False) -> None:
        """Replace the document and record every changed group in its history.

        ``force`` overwrites a corrupt document or history (the bad bytes are kept aside).
        """

    async def history(self, gid: group.ID) -> list[HistoryEntry]:
        """The group's last committed entries, oldest first (``[]`` when none)."""

    async def save_state(self, gid: group.ID, state: State | None, *,
                         force: bool = False) -> None:
        """Persist the group's in-flight state; ``None`` clears it."""

    async def load_state(self, gid: group.ID) -> State | None:
        """The group's in-flight state, or None."""

    async def load_states(self) -> dict[group.ID, State]:
        """Every saved state, also of groups no longer in the document (being destroyed)."""


# -- pure rules shared by the backends ------------------------------------------------------

DESTROYING = "Destroying"
"""The key of a destroy's record in a group's state: the group's entry as the document had
it (``{Plugin, Properties}``)."""


def destroying(entry: plugin.Spec) -> State:
    """The state of a group once its ``entry`` has left the document, until its members are
    destroyed."""
    return {DESTROYING: entry.to_wire()}


def destroying_entry(state: State | None) -> plugin.Spec | None:
    """The document entry of a group being destroyed, when ``state`` is a destroy's record."""
    if not isinstance(state, dict) or DESTROYING not in state:
        return None
    try:
        entry = plugin.Spec.model_validate(state[DESTROYING])
        group.Spec.model_validate(entry.properties)
    except pydantic.ValidationError:
        return None
    return entry


_T = TypeVar("_T")

DOCUMENT: pydantic.TypeAdapter[Document] = pydantic.TypeAdapter(Document)
HISTORY_LIST: pydantic.TypeAdapter[list[HistoryEntry]] = pydantic.TypeAdapter(list[HistoryEntry])
HISTORY_MAP: pydantic.TypeAdapter[dict[str, list[HistoryEntry]]] = pydantic.TypeAdapter(
    dict[str, list[HistoryEntry]])
STATE: pydantic.TypeAdapter[State] = pydantic.TypeAdapter(State)
STATE_MAP: pydantic.TypeAdapter[dict[str, State]] = pydantic.TypeAdapter(dict[str, State])


def decode(raw: bytes, adapter: pydantic.TypeAdapter[_T], *, source: str) -> _T:
    """Parse stored bytes; any problem is an :class:`errors.InvalidError` naming ``source``."""
    try:
        text = raw.decode("utf-8")  # json.loads(bytes) would guess UTF-16 from a BOM
    except UnicodeDecodeError as e:
        raise corrupt(source, f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        # Cut short: the parser ran off the end, or a string was never closed.
        cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")
        what = "truncated JSON" if cut else "bad JSON"
        raise corrupt(source, f"{what}: {e.msg} at line {e.lineno} column {e.colno}") from e
    try:
        return adapter.validate_python(data)
    except pydantic.ValidationError as e:
        raise corrupt(source, f"wrong shape: {explain(e)}") from e


def explain(error: pydantic.ValidationError) -> str:
    """``Groups.web.Plugin: required; ...`` with Go field names: the first five problems."""
    return validation.describe(error, limit=5)


def corrupt(source: str, problem: str) -> errors.InvalidError:
    return errors.InvalidError(f"corrupt store {source}: {problem}", source=source,
                               problem=problem)


def encode(data: Any) -> bytes:
    """Stored JSON: indented so a person can read and diff it."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def encode_history(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    return [e.to_wire() for e in entries]


def record(history: list[HistoryEntry], entry: plugin.Spec, *, limit: int,
           now: datetime | None = None) -> list[HistoryEntry]:
    """The history after committing ``entry``: appended when it differs from the newest
    one, then trimmed to the newest ``limit``. Versions keep counting past the trim."""
    if history and history[-1].spec.to_wire() == entry.to_wire():
        return history
    version = history[-1].version + 1 if history else 1
    added = HistoryEntry(version=version, time=now or datetime.now(UTC), spec=entry)
    return [*history, added][-limit:]


def check_limit(limit: int) -> int:
    if limit < 1:
        raise errors.InvalidError(f"history_limit: expected at least 1, got {limit}",
                                  field="history_limit")
    return limit


def require_token(token: TokenSource | None, *, action: str) -> leader.Token | None:
    """The current token; :class:`errors.NotLeaderError` when a source says we lost it."""
    if token is None:
        return None
    current = token()
    if current is None:
        raise errors.NotLeaderError(f"cannot {action}: this manager does not lead")
    return current


def check_json(gid: group.ID, state: State | None) -> Any:
    """The state as plain JSON data; a value JSON cannot hold is the caller's error."""
    if state is None:
        return None
    try:
        return json.loads(json.dumps(state))
    except (TypeError, ValueError) as e:
        raise errors.InvalidError(f"state of group {gid!r}: not JSON-serializable: {e}",
                                  id=gid) from e
