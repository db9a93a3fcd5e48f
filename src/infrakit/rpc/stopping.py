"""Stopping plugins safely: never signal a pid that is not the plugin's.

The logic behind ``infrakit plugin stop`` (the CLI prints what :func:`stop` returns), also
used by :func:`.starting.release` for the plugins it started. A plugin is stopped by the pid
in ``<name>.pid`` beside its socket, and only after checking that this pid is the process
serving the socket (:func:`infrakit.processes.holds_socket`): a stale pid file may name a
recycled pid. SIGTERM first, SIGKILL after a timeout; a killed plugin's leftover socket and
pid file are removed.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

from infrakit import durations, errors, processes
from infrakit.rpc import discovery, launch, sockets

STOP_TIMEOUT = 5.0
"""Seconds a plugin has to exit after SIGTERM before it gets SIGKILL."""


def stop(names: Iterable[str], *, plugins_dir: pathlib.Path,
         timeout: float = STOP_TIMEOUT) -> list[launch.Outcome]:
    """SIGTERM each named plugin via its pid file, wait (SIGKILL after ``timeout``)."""
    return [_stop_one(name, plugins_dir=plugins_dir, timeout=timeout) for name in names]


def running(plugins_dir: pathlib.Path) -> list[str]:
    """Names of every socket in the plugins dir (what ``stop --all`` stops)."""
    return list(discovery.list_sockets(plugins_dir))


def _stop_one(name: str, *, plugins_dir: pathlib.Path, timeout: float) -> launch.Outcome:
    try:
        sockets.check_name(name)
        path = plugins_dir / name
        pid = _verified_pid(name, path)
    except errors.InfrakitError as exc:
        return launch.failed(name, exc)
    # It may exit between the check and the signal: stopped all the same.
    if processes.stop(pid, timeout=timeout):
        return launch.Outcome(name=name, pid=pid, message=f"{name} stopped (pid {pid})")
    _remove_leftovers(path)
    return launch.Outcome(name=name, pid=pid,
                          message=f"{name} killed (pid {pid}): it did not exit within "
                                  f"{durations.format_duration(timeout)} of SIGTERM")


def _verified_pid(name: str, path: pathlib.Path) -> int:
    """The pid serving ``path``, after checking that signalling it is safe."""
    has_socket = sockets.is_socket(path)
    pid = sockets.read_pid(path)
    if pid is None:
        if has_socket and not sockets.is_live(path):
            path.unlink(missing_ok=True)
            raise errors.NotFoundError(f"{name} is not running (removed its stale socket {path})")
        if has_socket:
            raise errors.ConflictError(
                f"{name}: no pid file {sockets.pid_path(path)}; cannot tell which process "
                "serves it, not signalling anything")
        raise errors.NotFoundError(f"{name} is not running (no socket {path})", plugin=name)
    if not processes.alive(pid):
        _remove_leftovers(path)
        raise errors.NotFoundError(
            f"{name} is not running (stale pid file: pid {pid} does not exist; removed it)")
    if not has_socket:
        raise errors.ConflictError(
            f"{name}: no socket {path} but its pid file names live pid {pid}, which may not be "
            "the plugin; not signalling it")
    holds = processes.holds_socket(pid, path)
    if holds is False or (holds is None and not sockets.is_live(path)):
        raise errors.ConflictError(
            f"{name}: pid {pid} (from {sockets.pid_path(path)}) does not serve {path}; "
            "not signalling it")
    return pid


def _remove_leftovers(path: pathlib.Path) -> None:
    """Remove the socket and pid file of a plugin that died without cleaning up."""
    if sockets.is_socket(path) and not sockets.is_live(path):
        path.unlink(missing_ok=True)
    if not sockets.is_socket(path):
        sockets.pid_path(path).unlink(missing_ok=True)
