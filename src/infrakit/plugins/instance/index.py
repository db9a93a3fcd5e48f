"""The parsed contents of a directory of small files, kept current at little cost per call.

The file instance plugin asks :meth:`Index.refresh` before every Describe. A file is parsed
again only when its (inode, mtime_ns, size) changed; a file that does not parse is warned about
once per version of it and then skipped. A file that is not complete yet (empty, or the parser
raises :class:`Incomplete`: writers create files in place with one ``write()``) is skipped
quietly and read again once it changes (its size grows; inotify reports the write and the
close). It is never taken for a deletion: a file rewritten in place keeps its last complete
value until the new one is whole. With inotify (:mod:`dirwatch`) only the names the
kernel reports are looked at; without it, every call scans the directory and stats each file.
Not thread-safe: the caller holds its own lock.
"""

from __future__ import annotations

import logging
import os
import pathlib
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from infrakit.plugins.instance import dirwatch

log = logging.getLogger(__name__)

T = TypeVar("T")

Version = tuple[int, int, int]
"""(inode, mtime_ns, size): a file's identity for the cache."""


class Incomplete(ValueError):
    """Raised by a parser: this file is still being written; skip it without a warning."""


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    version: Version
    value: T | None
    """``None`` for a file that did not parse (already warned about)."""


class Index(Generic[T]):
    """``name → parse(name, bytes)`` for every file in ``directory`` not starting with ``.``."""

    def __init__(
        self, directory: pathlib.Path, parse: Callable[[str, bytes], T], *, watch: bool = True
    ) -> None:
        self._dir = directory
        self._parse = parse
        # Watch before the first scan, so nothing that happens after it is missed.
        self._watch = dirwatch.open_watch(directory) if watch else None
        self._must_scan = True
        self._pending: set[str] = set()  # names the watch reported, not looked at yet
        self._entries: dict[str, _Entry[T]] = {}
        self.generation = 0
        """Grows whenever a value appears, changes or vanishes."""

    def values(self) -> Iterator[T]:
        """Every parsed value, as of the last :meth:`refresh`."""
        for entry in self._entries.values():
            if entry.value is not None:
                yield entry.value

    def settled(self) -> bool:
        """True when the watch says nothing changed since the last :meth:`refresh`.

        Cheap (one non-blocking read), so callers may ask it on an event loop; never True
        without a watch, since then only a scan can tell.
        """
        if self._watch is None or self._must_scan:
            return False
        changed = self._watch.changes()
        if changed is None:
            self._must_scan = True
            return False
        self._pending.update(name for name in changed if not name.startswith("."))
        return not self._pending

    def refresh(self) -> None:
        """Bring the cache up to date with the directory."""
        changed = None if self._watch is None else self._watch.changes()
        if changed is None or self._must_scan:
            self._pending.clear()
            self._scan()
            self._must_scan = self._watch is None
            return
        names, self._pending = self._pending.union(changed), set()
        for name in names:
            if not name.startswith("."):
                self._look_at(name)

    def put(self, name: str, value: T, info: os.stat_result) -> None:
        """We wrote ``name`` ourselves and know its ``value``: no need to read it back."""
        self._entries[name] = _Entry((info.st_ino, info.st_mtime_ns, info.st_size), value)
        self.generation += 1

    def current(self, name: str, info: os.stat_result) -> T | None:
        """The value of ``name`` if the cache holds it for this very version of the file."""
        cached = self._entries.get(name)
        if cached is None or cached.version != (info.st_ino, info.st_mtime_ns, info.st_size):
            return None
        return cached.value

    def forget(self, name: str) -> None:
        """Drop ``name`` now (we deleted it ourselves)."""
        if self._entries.pop(name, None) is not None:
            self.generation += 1

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
            self._must_scan = True

    def _scan(self) -> None:
        names: set[str] = set()
        with os.scandir(self._dir) as listing:
            for item in listing:
                if item.name.startswith("."):
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted while we listed
                names.add(item.name)
                self._update(item.name, info)
        if len(names) != len(self._entries):
            # Every name seen is in the cache, so a size difference means some vanished.
            for name in self._entries.keys() - names:
                self.forget(name)

    def _look_at(self, name: str) -> None:
        try:
            info = os.stat(self._dir / name, follow_symlinks=False)
        except FileNotFoundError:
            self.forget(name)
            return
        self._update(name, info)

    def _update(self, name: str, info: os.stat_result) -> None:
        version = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._entries.get(name)
        if cached is not None and cached.version == version:
            return
        try:
            value = self._load(name, info.st_mode)
        except Incomplete:
            value = None if cached is None else cached.value
        self._entries[name] = _Entry(version, value)
        self.generation += 1

    def _load(self, name: str, mode: int) -> T | None:
        """The value of file ``name``, ``None`` when it has none; :class:`Incomplete` when it
        is still being written."""
        path = self._dir / name
        if not stat.S_ISREG(mode):
            log.debug("ignoring %s: not a regular file", path)
            return None
        try:
            raw = path.read_bytes()
            if not raw:
                raise Incomplete("empty")
            return self._parse(name, raw)
        except FileNotFoundError:
            return None
        except Incomplete as exc:
            log.debug("skipping %s until it is complete: %s", path, exc)
            raise
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
            return None
