"""The files a plugin owns in the plugins dir: its socket and its pid file.

Called by ``rpc.server`` before binding and after stopping. A socket left behind by a dead
plugin is replaced; one with a live peer behind it makes the new plugin refuse to start.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import stat

from infrakit import errors

MAX_SOCKET_PATH = 107
"""Bytes in a unix socket path, less the terminating NUL (Linux ``sun_path``)."""


def check_name(name: str) -> None:
    """A plugin's own name is a file name: no slash, nothing hidden, not empty."""
    if not name or "/" in name or "\0" in name or name.startswith("."):
        raise errors.UsageError(
            f"plugin name {name!r} is not valid: expected a non-empty file name without '/' "
            "that does not start with '.'"
        )


def ensure_dir(directory: pathlib.Path) -> None:
    """Create the plugins dir 0700 if missing; fail clearly when it cannot be used."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except PermissionError:
        raise errors.UsageError(
            f"cannot create plugins dir {directory}: permission denied") from None
    except OSError as exc:
        raise errors.UsageError(f"cannot create plugins dir {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise errors.UsageError(f"plugins dir {directory} is not writable: permission denied")


def socket_path(directory: pathlib.Path, name: str) -> pathlib.Path:
    path = directory / name
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise errors.UsageError(
            f"socket path {path} is {len(os.fsencode(path))} bytes; unix sockets allow at most "
            f"{MAX_SOCKET_PATH}: use a shorter INFRAKIT_PLUGINS_DIR or plugin name"
        )
    return path


def pid_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".pid")


def read_pid(path: pathlib.Path) -> int | None:
    """The pid in ``<socket>.pid``, or None when absent or unreadable."""
    try:
        return int(pid_path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def claim(path: pathlib.Path) -> None:
    """Make ``path`` free to bind: remove a stale socket, refuse a live one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise errors.ConflictError(f"{path} exists and is not a socket; refusing to replace it")
    if is_live(path):
        pid = read_pid(path)
        who = f"pid {pid}" if pid else "unknown pid"
        raise errors.ConflictError(
            f"another plugin is already listening at {path} ({who}); stop it first "
            f"(infrakit plugin stop {path.name})", pid=pid)
    path.unlink(missing_ok=True)
    pid_path(path).unlink(missing_ok=True)


def is_socket(path: pathlib.Path) -> bool:
    """True when a socket file (live or stale) is at ``path``."""
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def is_live(path: pathlib.Path) -> bool:
    """True when something accepts connections on the socket."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        # Timeouts and permission problems: someone may be there; do not steal the path.
        return True
    finally:
        probe.close()
    return True


def write_pid(path: pathlib.Path) -> None:
    pid_path(path).write_text(f"{os.getpid()}\n")


def release(path: pathlib.Path, *, inode: int | None) -> None:
    """Remove our socket and pid file, unless another process has taken them over."""
    with contextlib.suppress(FileNotFoundError):
        if inode is None or os.lstat(path).st_ino == inode:
            path.unlink()
    if read_pid(path) == os.getpid():
        pid_path(path).unlink(missing_ok=True)
