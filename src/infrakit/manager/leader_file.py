"""File leadership for managers on one host: InfraKit's leader file, and an ``flock`` mode.

- :class:`FileLeadership` (``--leader-file F``, InfraKit's ``os`` backend): a manager
  leads while the file's content is its own name. A person or a script picks the leader
  by writing a name into the file; every manager polls it.
- :class:`FlockLeadership` (automatic): managers contend for an exclusive ``flock`` on a
  lock file; the holder leads and writes its name into the file so the others can tell
  who leads. The kernel drops the lock when the holder dies, however it dies, and the
  next contender takes it at its next poll.

Neither can fence a store write the way etcd does (nothing outside this host checks the
token), so a deposed file leader's safety rests on it noticing at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from infrakit import errors
from infrakit.manager import leader

log = logging.getLogger(__name__)


def _new_token() -> leader.Token:
    # Unique per gain on this host; file modes have nothing better to fence with.
    return leader.Token(generation=time.time_ns())


def _check_poll(poll: float) -> float:
    if poll <= 0:
        raise errors.InvalidError(f"poll: expected seconds > 0, got {poll}", field="poll")
    return poll


class _Polling(leader.Base):
    """Runs :meth:`_check` at :meth:`start` and then every ``poll`` seconds until :meth:`stop`."""

    def __init__(self, name: str, *, poll: float) -> None:
        super().__init__(name)
        self.poll = _check_poll(poll)

    async def start(self) -> None:
        if self._task is None:
            self._check()  # so that a caller knows where it stands as soon as this returns
        await super().start()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                self._check()
            except Exception as e:
                # Unsure means not leading: acting without knowing is the unsafe choice.
                log.exception("leadership check of %s failed", self.name)
                self._lose(f"leadership check failed: {e}")

    async def _resign(self) -> None:
        self._release()

    def _check(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Give up whatever the backend holds."""


class FileLeadership(_Polling):
    """``FileLeadership(leader_file, name, poll=1.0)``: lead while the file names us."""

    def __init__(self, path: Path | str, name: str, *, poll: float = 1.0) -> None:
        super().__init__(name, poll=poll)
        self.path = Path(path)
        self._seen = ""
        self._seen_since: datetime | None = None

    def _read(self) -> str:
        try:
            return self.path.read_text().strip()
        except FileNotFoundError:
            return ""

    def _check(self) -> None:
        try:
            named = self._read()
        except (OSError, UnicodeDecodeError) as e:
            self._lose(f"cannot read leader file {self.path}: {e}")
            return
        if named != self._seen:
            self._seen, self._seen_since = named, datetime.now(UTC)
        if named == self.name:
            self._gain(_new_token(), f"leader file {self.path} names {self.name!r}")
        else:
            self._lose(f"leader file {self.path} names {named!r}" if named
                       else f"leader file {self.path} names nobody")

    async def leader_info(self) -> leader.Info:
        named = self._read()
        since = self._since if named == self.name else (
            self._seen_since if named == self._seen else None)
        return leader.Info(name=named, since=since, backend="file")


class FlockLeadership(_Polling):
    """``FlockLeadership(lock_file, name, poll=0.1)``: lead while holding an exclusive
    ``flock`` on the file; the holder's name is written into it."""

    def __init__(self, path: Path | str, name: str, *, poll: float = 0.1) -> None:
        super().__init__(name, poll=poll)
        self.path = Path(path)
        self._fd: int | None = None

    def _check(self) -> None:
        if self._fd is None:
            self._try_acquire()
        elif not _same_file(self._fd, self.path):
            # Someone removed or replaced the lock file: another manager can lock the new
            # one, so we must stop at once rather than lead beside it.
            self._lose(f"lock file {self.path} was removed or replaced")
            self._release()

    def _try_acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return
        if not _same_file(fd, self.path):
            os.close(fd)  # replaced between open and lock: try again next poll
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.name}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        self._gain(_new_token(), f"holds the lock on {self.path}")

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)  # nobody leads until the next holder writes its name
        os.close(fd)  # closing drops the lock

    async def leader_info(self) -> leader.Info:
        if self.is_leader():
            return leader.Info(name=self.name, since=self._since, backend="flock")
        return _holder(self.path)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _holder(path: Path) -> leader.Info:
    """Who holds the lock: the name in the file, if a probe finds the lock taken."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return leader.Info(backend="flock")
    try:
        if _unlocked(fd):
            return leader.Info(backend="flock")  # nobody holds it; the name may be stale
        stat = os.fstat(fd)
        name = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        return leader.Info(name=name, since=datetime.fromtimestamp(stat.st_mtime, UTC),
                           backend="flock")
    finally:
        os.close(fd)


def _unlocked(fd: int) -> bool:
    """True when nobody holds the lock (a shared lock is granted; released at once)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True
