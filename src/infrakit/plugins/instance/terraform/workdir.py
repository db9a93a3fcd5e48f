"""The work directory: one ``instance-<digits>.tf.json`` per instance, as v0.5 laid it out.

Beside the instance files it holds Terraform's state (unless a backend is named), the
user's own ``.tf`` files (networks, variables…), and two things of ours:

- ``infrakit-terraform.tf.json``, the settings file: the backend block when ``--backend`` is
  given, else an empty ``terraform`` block. It is always there, so that removing the last
  instance never leaves Terraform with "no configuration files".
- ``.infrakit/`` (Terraform reads no subdirectory): the CLI configuration file Terraform is
  pointed at when the user has none, the lock that makes applies one at a time across
  processes, and ``destroying/<id>``, the marks of instances being destroyed, so that a
  restart finishes a destroy instead of creating the instance again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import pathlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from infrakit import errors, files
from infrakit.spi import instance

log = logging.getLogger(__name__)

SETTINGS = "infrakit-terraform.tf.json"
HOUSE = ".infrakit"
FILE = re.compile(r"^(instance-[0-9]+)\.tf\.json$")
"""An instance file's name (v0.5's pattern, anchored)."""
ID = re.compile(r"^instance-[0-9]+$")


class WorkDir:
    """One work directory; ``backend`` is the backend type named in the flags, if any."""

    def __init__(self, path: pathlib.Path, *, backend: str = "") -> None:
        if not path.is_absolute():
            path = path.absolute()
        self.path = path
        self.backend = backend
        self.house = path / HOUSE
        self._last = 0

    def prepare(self) -> None:
        """Create the directory and our files in it (``UsageError`` if it cannot be made)."""
        try:
            (self.house / "destroying").mkdir(parents=True, exist_ok=True)
            block: dict[str, Any] = {"backend": {self.backend: {}}} if self.backend else {}
            settings: dict[str, Any] = {"terraform": block}
            self._keep(self.path / SETTINGS, _dumps(settings))
            self._keep(self.house / "terraformrc", b"")
        except OSError as exc:
            raise errors.UsageError(f"--dir {self.path}: cannot set it up: {exc.strerror}") \
                from None

    def environment(self) -> dict[str, str]:
        """The environment Terraform runs in: no prompts, no update checks, and a CLI
        configuration file that exists (the user's, else an empty one of ours)."""
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
               "TF_INPUT": "0"}
        given = env.get("TF_CLI_CONFIG_FILE", "")
        usable = pathlib.Path(given if given else pathlib.Path.home() / ".terraformrc")
        if not usable.is_file():
            env["TF_CLI_CONFIG_FILE"] = str(self.house / "terraformrc")
        return env

    # Instance files ----------------------------------------------------------------------

    def ids(self) -> list[instance.ID]:
        """Every instance that has a file, in ID order."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        found = [match.group(1) for name in names if (match := FILE.match(name))]
        return sorted(instance.ID(iid) for iid in found)

    def file(self, iid: str) -> pathlib.Path:
        return self.path / f"{iid}.tf.json"

    def read(self, iid: str) -> dict[str, Any] | None:
        """Instance ``iid``'s document; ``None`` when it has no file or the file is not a
        JSON object (logged: a half-written file of a crashed writer, or not ours)."""
        try:
            document = json.loads(self.file(iid).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read it (%s); left alone", self.file(iid), exc)
            return None
        return document if isinstance(document, dict) else None

    def write(self, iid: str, document: dict[str, Any]) -> None:
        """Write instance ``iid``'s file whole (a crash leaves the old one or the new)."""
        files.write_atomically(self.file(iid), _dumps(document))

    def remove(self, iid: str) -> None:
        self.file(iid).unlink(missing_ok=True)

    def new_id(self) -> instance.ID:
        """A fresh ID: ``instance-<microseconds since the epoch>``, after every one given."""
        number = max(time.time_ns() // 1000, self._last + 1)
        while self.file(f"instance-{number}").exists():
            number += 1
        self._last = number
        return instance.ID(f"instance-{number}")

    # Destroy marks -----------------------------------------------------------------------

    def destroying(self) -> set[instance.ID]:
        try:
            return {instance.ID(name) for name in os.listdir(self.house / "destroying")
                    if ID.match(name)}
        except FileNotFoundError:
            return set()

    def mark(self, iid: str) -> None:
        (self.house / "destroying" / iid).touch()

    def unmark(self, iid: str) -> None:
        (self.house / "destroying" / iid).unlink(missing_ok=True)

    # The apply lock ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(self, *, timeout: float) -> AsyncIterator[None]:
        """Hold the directory's lock (one apply at a time, also across processes);
        ``TemporaryError`` after ``timeout`` seconds of waiting for it."""
        handle = os.open(self.house / "apply.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        try:
            deadline = time.monotonic() + timeout
            while not _try_lock(handle):
                if time.monotonic() > deadline:
                    raise errors.TemporaryError(
                        f"{self.path}: another process holds the apply lock "
                        f"({self.house / 'apply.lock'}) for more than {timeout:g}s", delay=5.0)
                await asyncio.sleep(0.1)
            yield
        finally:
            os.close(handle)  # releases the lock

    def _keep(self, path: pathlib.Path, data: bytes) -> None:
        """Write ``path`` unless it holds ``data`` already."""
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == data:
                return
        files.write_atomically(path, data)


def _try_lock(handle: int) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _dumps(document: Any) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()
