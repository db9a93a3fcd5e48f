"""The super user's password of each ensemble when ``SuperPassword`` is not given.

Members never run with ``skipACL``: without a ``SuperPassword`` the flavor makes one per group,
derived (HMAC-SHA256) from a key it keeps in its state directory (``--dir``), created 0600 on
first use. The password is the same for a flavor restarted on the same directory, so that it
can still reconfigure the ensembles it started, and different for every group, so that one
ensemble's password opens no other. Neither the key nor a password is ever logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import pathlib
import secrets

from infrakit import errors

KEY_FILE = "super.key"
"""The key's file name in the state directory."""
KEY_BYTES = 32


class Keeper:
    """Passwords per group from the key in ``directory`` (read, or made, at first use)."""

    def __init__(self, directory: pathlib.Path) -> None:
        self._directory = directory
        self._key: bytes | None = None

    def password(self, group: str) -> str:
        """The super user's password of group ``group``."""
        digest = hmac.new(self._load(), f"zookeeper super user of {group}".encode(),
                          hashlib.sha256)
        return digest.hexdigest()

    def _load(self) -> bytes:
        if self._key is None:
            self._key = _read_or_make(self._directory / KEY_FILE)
        return self._key

    def __repr__(self) -> str:  # the key stays out of any log line that prints the keeper
        return f"Keeper({str(self._directory)!r})"


def _read_or_make(path: pathlib.Path) -> bytes:
    """The key in ``path``; made (0600, in a 0700 directory) when there is none. Two flavors
    racing on one directory agree: the one that loses the exclusive create reads the other's."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read(path)
        try:
            os.write(fd, secrets.token_hex(KEY_BYTES).encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        os.close(fd)
        return _read(path)
    except OSError as exc:
        raise errors.PermanentError(
            f"--dir: cannot keep the ZooKeeper super user's key in {path.parent} "
            f"({exc.strerror or exc}); give a writable --dir, or Properties.SuperPassword"
        ) from None


def _read(path: pathlib.Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < KEY_BYTES:
        raise errors.PermanentError(
            f"{path}: too short to be the ZooKeeper super user's key (written by another "
            "process just now, or damaged); remove it to make a new one (every ensemble "
            "started with the old one then needs Properties.SuperPassword to be reconfigured)")
    return key
