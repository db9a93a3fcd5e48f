"""The file store (the default): InfraKit's ``<store dir>/global.config``, with
``history.json`` and ``state.json`` beside it.

The manager (``--store-dir D``) and embedded mode use it. Every write is atomic: a temp
file in the same directory, fsync, rename over the old file, fsync of the directory; a
crash leaves either the old file or the new one, never half of one. The rules every store
follows (corrupt input, last good document, ``force``, leadership) are in
:mod:`infrakit.manager.store`.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from infrakit import errors, files
from infrakit.manager import store
from infrakit.spi import group

CONFIG = "global.config"
HISTORY = "history.json"
STATE = "state.json"

_T = TypeVar("_T")


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomically(path, data)


def read(path: Path, adapter: pydantic.TypeAdapter[_T], empty: _T) -> _T:
    """The parsed file, ``empty`` when it does not exist; corrupt → errors.InvalidError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return empty
    return store.decode(raw, adapter, source=str(path))


def read_to_replace(path: Path, adapter: pydantic.TypeAdapter[_T], empty: _T, *,
                    force: bool) -> _T:
    """:func:`read` before an overwrite: a corrupt file is refused, or with ``force``
    moved aside (``<name>.corrupt-<unix time>``) and treated as empty."""
    try:
        return read(path, adapter, empty)
    except errors.InvalidError as e:
        if not force:
            raise errors.InvalidError(
                f"{e.message}; refusing to overwrite it (fix it, or save with force=True to "
                f"replace it and keep the bad file aside)", **e.data) from e
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        os.replace(path, aside)
        return empty


class FileStore:
    """``FileStore(dir, history_limit=10, token=leadership.token)``.

    ``token``: asked before every write; when it returns None the write raises
    :class:`errors.NotLeaderError`. Without it the store writes unconditionally (tools).
    """

    def __init__(self, directory: Path | str, *, history_limit: int = store.DEFAULT_HISTORY,
                 token: store.TokenSource | None = None) -> None:
        self.directory = Path(directory)
        self.history_limit = store.check_limit(history_limit)
        self._token = token
        self._last_good: store.Document | None = None
        self._lock = asyncio.Lock()

    @property
    def config_path(self) -> Path:
        return self.directory / CONFIG

    @property
    def history_path(self) -> Path:
        return self.directory / HISTORY

    @property
    def state_path(self) -> Path:
        return self.directory / STATE

    @property
    def last_good(self) -> store.Document | None:
        return self._last_good

    async def load(self) -> store.Document:
        doc = await asyncio.to_thread(read, self.config_path, store.DOCUMENT, store.Document())
        self._last_good = doc
        return doc

    async def save(self, doc: store.Document, *, force: bool = False) -> None:
        async with self._lock:
            await asyncio.to_thread(self._save, doc, force)
            self._last_good = doc

    def _save(self, doc: store.Document, force: bool) -> None:
        store.require_token(self._token, action=f"write {self.config_path}")
        read_to_replace(self.config_path, store.DOCUMENT, store.Document(), force=force)
        histories = read_to_replace(self.history_path, store.HISTORY_MAP, {}, force=force)
        for gid, entry in doc.groups.items():
            histories[gid] = store.record(histories.get(gid, []), entry,
                                          limit=self.history_limit)
        store.require_token(self._token, action=f"write {self.config_path}")
        write_atomic(self.config_path, store.encode(doc.to_wire()))
        write_atomic(self.history_path, store.encode(
            {gid: store.encode_history(entries) for gid, entries in histories.items()}))

    async def history(self, gid: group.ID) -> list[store.HistoryEntry]:
        histories = await asyncio.to_thread(read, self.history_path, store.HISTORY_MAP, {})
        return histories.get(gid, [])

    async def save_state(self, gid: group.ID, state: store.State | None, *,
                         force: bool = False) -> None:
        encoded = store.check_json(gid, state)
        async with self._lock:
            await asyncio.to_thread(self._save_state, gid, encoded, force)

    def _save_state(self, gid: group.ID, state: Any, force: bool) -> None:
        store.require_token(self._token, action=f"write {self.state_path}")
        states = read_to_replace(self.state_path, store.STATE_MAP, {}, force=force)
        if state is None:
            states.pop(gid, None)
        else:
            states[gid] = state
        store.require_token(self._token, action=f"write {self.state_path}")
        write_atomic(self.state_path, store.encode(states))

    async def load_state(self, gid: group.ID) -> store.State | None:
        return (await self.load_states()).get(gid)

    async def load_states(self) -> dict[group.ID, store.State]:
        states = await asyncio.to_thread(read, self.state_path, store.STATE_MAP, {})
        return {group.ID(gid): state for gid, state in states.items()}

