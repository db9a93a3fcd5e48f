"""Which names in a directory changed since we last asked, from Linux inotify (via ctypes).

The file instance plugin uses it so that a Describe over 1,000 unchanged files costs one
non-blocking ``read()`` instead of 1,000 ``stat()`` calls (2.7 ms here, more than half the
budget of a 150 calls/s Describe). The kernel queues an event inside the syscall that changes
the directory, so a file deleted by someone else shows in our very next call. Where inotify is
missing (not Linux, out of instances) :func:`open_watch` returns ``None`` and the caller scans.

:class:`Notifier` uses a second watch to tell someone (the group controller) at once when a
file changes that its owner did not change itself: a user deleting an instance file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_MODIFY, _ATTRIB, _CLOSE_WRITE = 0x2, 0x4, 0x8
_MOVED_FROM, _MOVED_TO, _CREATE, _DELETE = 0x40, 0x80, 0x100, 0x200
_DELETE_SELF, _MOVE_SELF = 0x400, 0x800
_Q_OVERFLOW, _IGNORED = 0x4000, 0x8000
_NAMES = _MODIFY | _ATTRIB | _CLOSE_WRITE | _MOVED_FROM | _MOVED_TO | _CREATE | _DELETE
_SELF = _DELETE_SELF | _MOVE_SELF
_LOST = _Q_OVERFLOW | _IGNORED | _SELF
"""Events after which we no longer know what changed: the caller must scan."""

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class Watch:
    """An inotify watch on one directory; :meth:`changes` drains what happened since."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def changes(self) -> set[str] | None:
        """Names touched since the last call; ``None`` when anything may have changed."""
        events = self.events()
        return None if events is None else set(events)

    def events(self) -> list[str] | None:
        """The name of each event since the last call, in order (a name once per event);
        ``None`` when events were lost, so anything may have changed."""
        names: list[str] = []
        lost = False
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                _, mask, _, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                if mask & _LOST:
                    lost = True
                elif length:
                    names.append(os.fsdecode(data[offset:offset + length].rstrip(b"\0")))
                offset += length
        return None if lost else names

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Notifier:
    """Calls ``on_change()`` from its own thread soon after a name in ``directory`` changes
    that the owner did not announce with :meth:`expect` beforehand (names starting with ``.``
    never count). Inactive (and cheap) where inotify is missing: polling finds the change.
    """

    BURST = 0.01
    """Seconds to gather changes after the first: a burst (``rm`` of many files, or the owner
    writing thousands) costs one wake-up and at most one call, not one per file."""
    EXPECTED_FOR = 10.0
    """Seconds an announced change stays expected."""

    def __init__(self, directory: str | os.PathLike[str], on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._expected: dict[str, tuple[int, float]] = {}  # name: (events due, until when)
        self._lock = threading.Lock()
        # Changes worth telling: a file deleted, moved, or written and closed.
        self._watch = open_watch(directory,
                                 events=_DELETE | _MOVED_FROM | _MOVED_TO | _CLOSE_WRITE)
        self._stop_read, self._stop_write = os.pipe()
        self._thread: threading.Thread | None = None
        if self._watch is not None:
            self._thread = threading.Thread(target=self._loop, name="dirnotify", daemon=True)
            self._thread.start()

    def expect(self, name: str) -> None:
        """The owner is about to change ``name`` (one event: written, moved in or deleted):
        that change is not news."""
        with self._lock:
            count, _ = self._expected.get(name, (0, 0.0))
            self._expected[name] = (count + 1, time.monotonic() + self.EXPECTED_FOR)

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._stop_write, b"x")
            self._thread.join()
            self._thread = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        for fd in (self._stop_read, self._stop_write):
            if fd >= 0:
                os.close(fd)
        self._stop_read = self._stop_write = -1

    def _loop(self) -> None:
        assert self._watch is not None
        poller = select.poll()
        poller.register(self._watch.fileno(), select.POLLIN)
        poller.register(self._stop_read, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._stop_read in ready:
                return
            time.sleep(self.BURST)
            if not self._news(self._watch.events()):
                continue
            try:
                self._on_change()
            except Exception:
                log.exception("change notification failed")

    def _news(self, names: list[str] | None) -> bool:
        """True when the events on ``names`` hold a change the owner did not announce."""
        if names is None:
            return True  # events were lost: anything may have changed
        now, news = time.monotonic(), False
        with self._lock:
            for name in names:
                if name.startswith("."):
                    continue
                count, until = self._expected.pop(name, (0, 0.0))
                if count == 0 or until < now:
                    news = True
                elif count > 1:
                    self._expected[name] = (count - 1, until)
            if len(self._expected) > 1024:  # announced changes that never came
                self._expected = {n: e for n, e in self._expected.items() if e[1] >= now}
        return news


def open_watch(directory: str | os.PathLike[str], *, events: int = _NAMES) -> Watch | None:
    """A watch on ``directory`` for ``events`` (by default every change to a name), or
    ``None`` when this system cannot give one."""
    libc = _libc()
    if libc is None:
        return None
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        log.info("inotify unavailable (%s); scanning the directory on every call",
                 os.strerror(ctypes.get_errno()))
        return None
    if libc.inotify_add_watch(fd, os.fsencode(directory), events | _SELF) < 0:
        log.info("cannot watch %s (%s); scanning it on every call", directory,
                 os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    return Watch(fd)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc
