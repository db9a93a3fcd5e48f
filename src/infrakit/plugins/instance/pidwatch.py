"""Be told when a process exits, whoever its parent is: Linux pidfds polled by one thread.

``instance-process`` watches every instance's leader so that a crash (or ``kill -9``) wakes the
group controller at once instead of at its next poll. One daemon thread waits on all pidfds
with epoll; ``on_exit(key)`` runs in that thread. Where pidfds are missing (not Linux, kernel
before 5.3) :meth:`Watcher.watch` returns False and callers rely on polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Watcher:
    """Calls ``on_exit(key)`` when the process watched under ``key`` exits."""

    def __init__(self, on_exit: Callable[[str], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._keys: dict[int, str] = {}  # pidfd → key
        self._fds: dict[str, int] = {}  # key → pidfd
        self._poll = select.epoll()
        self._wake_read, self._wake_write = os.pipe()
        self._poll.register(self._wake_read, select.EPOLLIN)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="pidwatch", daemon=True)
        self._thread.start()

    def watch(self, key: str, pid: int) -> bool:
        """Watch ``pid``; False when it cannot be watched (already gone, or no pidfds here)."""
        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return False
        with self._lock:
            if self._closed:
                os.close(fd)
                return False
            self._drop(key)
            self._keys[fd], self._fds[key] = key, fd
            self._poll.register(fd, select.EPOLLIN)
        return True

    def unwatch(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.write(self._wake_write, b"x")
        self._thread.join()
        with self._lock:
            for key in list(self._fds):
                self._drop(key)
            self._poll.close()
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _drop(self, key: str) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            del self._keys[fd]
            with contextlib.suppress(OSError):
                self._poll.unregister(fd)
            os.close(fd)

    def _loop(self) -> None:
        while True:
            events = self._poll.poll()
            exited = []
            with self._lock:
                if self._closed:
                    return
                for fd, _ in events:
                    key = self._keys.get(fd)
                    if key is not None:
                        self._drop(key)
                        exited.append(key)
            for key in exited:
                try:
                    self._on_exit(key)
                except Exception:
                    log.exception("exit handler failed for %s", key)
