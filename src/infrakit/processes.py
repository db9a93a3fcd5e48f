"""Local processes as Linux's ``/proc`` shows them, and stopping them: TERM, then KILL.

The one place that reads ``/proc`` and signals processes; a leaf module (standard library only).
Its callers:

- ``rpc.stopping`` and ``rpc.starting``: is a plugin's pid alive, does it serve its socket
  (:func:`holds_socket`), stop it by pid (:func:`stop`), kill what ``start`` spawned
  (:func:`kill_spawned`);
- ``plugins.instance.process``: is a recorded pid still the process it started (same
  :attr:`Stat.start_time`, same :func:`boot_id`), stop an instance's whole session
  (:func:`stop_session`);
- ``testing.stop_processes``: stop what a test or benchmark started (:func:`stop_popens`).

Without ``/proc`` (not Linux) :func:`stat` says ``None`` and :func:`holds_socket` cannot tell;
:func:`alive` and the signalling functions still work.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

PROC = pathlib.Path("/proc")
KILL_TIMEOUT = 5.0
"""Seconds a session is waited for after SIGKILL (it cannot refuse; only slow exits take time)."""
_FIRST_PAUSE = 0.005
_LONGEST_PAUSE = 0.05


# Reading /proc ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` we use."""

    state: str
    """R, S, D, … ; Z (zombie) and X (dead) are not running."""
    parent: int
    """The parent's pid."""
    session: int
    """The session id: a process started in a new session leads it (its pid)."""
    start_time: int
    """Clock ticks after boot when the process started; with the pid, it names the process."""

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def stat(pid: int) -> Stat | None:
    """``/proc/<pid>/stat``, or ``None`` when there is no such process (or /proc hides it)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces and parentheses.
    fields = text.rpartition(")")[2].split()
    return Stat(state=fields[0], parent=int(fields[1]), session=int(fields[3]),
                start_time=int(fields[19]))


def boot_id() -> str:
    """This boot's identity: start times restart from zero at every boot."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """True while ``pid`` runs: a zombie counts as gone (and is reaped if it is our child)."""
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # kill(0) succeeds on a zombie: one not our child (its parent has not reaped it yet), or
    # our child that exited since the first look, reaped now.
    info = stat(pid)
    if info is not None and not info.running:
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> bool:
    """True when ``pid`` was our child and had exited: it is reaped now."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid


def session_members(session: int) -> list[int]:
    """The running (not zombie) processes of ``session``."""
    members = []
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            info = stat(int(entry.name))
            if info is not None and info.session == session and info.running:
                members.append(int(entry.name))
    return members


def holds_socket(pid: int, path: pathlib.Path) -> bool | None:
    """Whether ``pid`` has the unix socket listening at ``path`` open; None when we cannot
    tell (nothing is bound there as far as /proc knows, or ``pid``'s fds are hidden)."""
    inodes = listening_inodes(path)
    if not inodes:
        return None
    try:
        fds = os.listdir(PROC / str(pid) / "fd")
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.readlink(PROC / str(pid) / "fd" / fd)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            return True
    return False


def listening_inodes(path: pathlib.Path) -> set[int]:
    """Inodes of the unix sockets bound at ``path`` (from /proc/net/unix)."""
    wanted = os.path.realpath(path)
    suffix = "/" + path.name
    found: set[int] = set()
    try:
        with open(PROC / "net" / "unix") as table:
            next(table, None)
            for row in table:
                fields = row.split()
                if len(fields) < 8 or not fields[7].endswith(suffix):
                    continue
                if fields[7].startswith("/") and os.path.realpath(fields[7]) == wanted:
                    found.add(int(fields[6]))
    except OSError:
        return set()
    return found


# Stopping ---------------------------------------------------------------------------------

def stop(pid: int, *, timeout: float) -> bool:
    """SIGTERM ``pid``, SIGKILL it after ``timeout`` seconds, wait as long again for it to go.

    True when it exited before the SIGKILL. A pid that exits on its own meanwhile counts as
    stopped; any other error (not ours to signal) is raised."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout=timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, timeout=timeout)
    return False


def wait_gone(pid: int, *, timeout: float) -> bool:
    """Wait until ``pid`` is gone (see :func:`alive`); False when ``timeout`` passed first."""
    return _wait_until(lambda: not alive(pid), timeout=timeout)


def signal_session(session: int, signum: int) -> None:
    """Send ``signum`` to the leader's process group and to every other member of the session
    (members that made groups of their own too); processes already gone are skipped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session, signum)
    for pid in session_members(session):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def stop_session(session: int, *, timeout: float, reap: Callable[[], None]) -> bool:
    """TERM the session, KILL it after ``timeout``; True when it ended before the KILL.

    ``reap`` is called between looks: a leader that is our child stays a zombie, in the
    session, until the caller (who holds its Popen) reaps it."""
    signal_session(session, signal.SIGTERM)
    if _wait_until(lambda: _session_empty(session, reap), timeout=timeout):
        return True
    signal_session(session, signal.SIGKILL)
    _wait_until(lambda: _session_empty(session, reap), timeout=KILL_TIMEOUT)
    return False


def stop_popens(processes: Iterable[subprocess.Popen[Any]], *, timeout: float) -> None:
    """Stop children we hold the Popen of: TERM every one still running (CONT first: a stopped
    process cannot handle TERM), then wait for each; KILL what is left after ``timeout``
    seconds (counted per process)."""
    started = list(processes)
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
    for process in started:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_spawned(process: subprocess.Popen[Any], *, child: int | None) -> None:
    """SIGKILL a process we spawned and what it started, then reap it.

    When ``process`` leads a process group of its own the whole group goes; otherwise (it
    shares ours) only ``process`` and ``child``, and ``child`` only while it is a direct child
    of ``process`` (a pid read from a file may since name a stranger)."""
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            info = None if child is None else stat(child)
            if child is not None and info is not None and info.parent == process.pid:
                os.kill(child, signal.SIGKILL)
            process.kill()
    except ProcessLookupError:
        pass
    process.wait()


def _session_empty(session: int, reap: Callable[[], None]) -> bool:
    reap()
    if session_members(session):
        return False
    reap()  # the leader may have turned zombie between the first reap and the look
    return True


def _wait_until(condition: Callable[[], bool], *, timeout: float) -> bool:
    """Poll ``condition`` (5 ms, then slower up to 50 ms) until true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    pause = _FIRST_PAUSE
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)
    return True
