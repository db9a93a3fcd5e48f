"""The plugin's directory: one subdirectory per machine, which is the truth about what exists.

``<dir>/infrakit-<digits>/`` (the instance's ID, as v0.5 named them) holds the rendered
``Vagrantfile``, ``boot.sh`` (the Init, as v0.5 wrote it), Vagrant's own ``.vagrant/``, and
``infrakit.json``: the instance's tags, LogicalID, when it was made and whether its ``vagrant
up`` finished. The record is written before ``up`` runs, so a plugin that dies mid-``up``
still finds, after its restart, what it was making. Directories made by v0.5's plugin (a
``tags`` file, an ``ip`` file for the LogicalID) are read too.

Only :mod:`.plugin` calls this module; every function here is quick file work.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import secrets
import shutil
import time
from typing import Any

from pydantic import Field

from infrakit import errors, files
from infrakit.spi.wire import Tags, Wire

log = logging.getLogger(__name__)

PREFIX = "infrakit-"
RECORD = "infrakit.json"
VAGRANTFILE = "Vagrantfile"
BOOT = "boot.sh"
V05_TAGS = "tags"
V05_IP = "ip"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Record(Wire):
    """What the plugin knows of one machine beyond Vagrant's view."""

    tags: Tags = Field(default_factory=dict)
    """The instance's tags."""
    logical_id: str | None = None
    """Its LogicalID (a pet), if any."""
    created: float = 0.0
    """When Provision made the directory (seconds since the epoch)."""
    provisioned: bool = True
    """Whether ``vagrant up`` finished (v0.5's directories only ever had finished ones)."""


class Directory:
    """The machine directories under ``root`` (created 0700 when missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = pathlib.Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, iid: str) -> pathlib.Path:
        """The directory of instance ``iid``; ``InvalidError`` for an ID that could name a
        path elsewhere."""
        if not _ID.match(iid):
            raise errors.InvalidError(
                f"Instance: {iid!r} is not an instance-vagrant ID (expected a directory name "
                f"such as {PREFIX}123456789)", field="Instance")
        return self.root / iid

    def new_id(self) -> str:
        """A fresh ID (``infrakit-`` and nine digits, v0.5's form), not yet taken."""
        while True:
            iid = f"{PREFIX}{secrets.randbelow(10**9):09d}"
            if not (self.root / iid).exists():
                return iid

    def create(self, iid: str, *, vagrantfile: str, init: str, record: Record) -> pathlib.Path:
        """Make ``iid``'s directory with its files; ``FileExistsError`` if it exists."""
        path = self.path(iid)
        path.mkdir(mode=0o700)
        try:
            files.create(path / VAGRANTFILE, vagrantfile.encode(), mode=0o644)
            files.create(path / BOOT, init.encode(), mode=0o755)
            self.write(iid, record)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return path

    def write(self, iid: str, record: Record) -> None:
        files.write_atomically(self.path(iid) / RECORD,
                               json.dumps(record.to_wire(), indent=1).encode())

    def read(self, iid: str) -> Record | None:
        """``iid``'s record; None when the directory is not a machine of ours (or v0.5's),
        or is gone."""
        path = self.path(iid)
        try:
            return Record.from_wire(json.loads((path / RECORD).read_bytes()))
        except FileNotFoundError:
            return _v05(path)
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.warning("%s: unreadable %s, skipped: %s", iid, RECORD, exc)
            return None

    def listing(self) -> dict[str, Record]:
        """Every machine directory's record, by ID."""
        found = {}
        try:
            names = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        except FileNotFoundError:
            return {}
        for name in names:
            if _ID.match(name) and (record := self.read(name)) is not None:
                found[name] = record
        return found

    def created(self, iid: str) -> bool:
        """Whether Vagrant recorded a machine made for ``iid`` (it writes the machine's ID
        under ``.vagrant/machines/<name>/<provider>/id`` as soon as the provider made it)."""
        machines = self.path(iid) / ".vagrant" / "machines"
        return any(machines.glob("*/*/id"))

    def remove(self, iid: str) -> None:
        shutil.rmtree(self.path(iid), ignore_errors=True)


def new_record(*, tags: dict[str, str], logical_id: str | None) -> Record:
    return Record(tags=tags, logical_id=logical_id, created=time.time(), provisioned=False)


def _v05(path: pathlib.Path) -> Record | None:
    """A directory made by v0.5's plugin: ``tags`` (JSON), ``ip`` (the LogicalID)."""
    try:
        tags: Any = json.loads((path / V05_TAGS).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(tags, dict):
        return None
    try:
        logical_id: str | None = (path / V05_IP).read_text().strip() or None
    except OSError:
        logical_id = None
    return Record(tags={str(k): str(v) for k, v in tags.items()}, logical_id=logical_id)
