"""What Linux's /proc says about processes: state, session, start time; signalling a session.

``instance-process`` uses it to tell whether a recorded pid is still the process it started
(same start time, same boot) rather than a stranger that got the recycled pid, and to stop an
instance's whole process tree (every process of its session).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

_PROC = pathlib.Path("/proc")


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` we use."""

    state: str
    """R, S, D, … ; Z (zombie) and X (dead) are not running."""
    session: int
    """The session id: an instance's processes all share its leader's."""
    start_time: int
    """Clock ticks after boot when the process started; with the pid, it names the process."""

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def stat(pid: int) -> Stat | None:
    """``/proc/<pid>/stat``, or ``None`` when there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself hold spaces and parentheses.
    fields = text.rpartition(")")[2].split()
    return Stat(state=fields[0], session=int(fields[3]), start_time=int(fields[19]))


def boot_id() -> str:
    """This boot's identity: start times restart from zero at every boot."""
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def session_members(session: int) -> list[int]:
    """The running (not zombie) processes of ``session``."""
    members = []
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            info = stat(int(entry.name))
            if info is not None and info.session == session and info.running:
                members.append(int(entry.name))
    return members


def signal_session(session: int, signum: int) -> None:
    """Send ``signum`` to the leader's process group and to every other member of the session."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signum)
    for pid in session_members(session):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def stop_session(session: int, *, timeout: float, reap: Callable[[], None]) -> bool:
    """TERM the session, KILL it after ``timeout``; True when it ended before the KILL."""
    signal_session(session, signal.SIGTERM)
    if _wait_empty(session, timeout, reap):
        return True
    signal_session(session, signal.SIGKILL)
    _wait_empty(session, 5.0, reap)
    return False


def _wait_empty(session: int, timeout: float, reap: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        reap()  # a leader that is our child stays a zombie, in the session, until reaped
        if not session_members(session):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
