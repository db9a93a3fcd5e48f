"""An ``instance-file`` plugin that journals every Provision and Destroy, so that failover
tests can count them: no instance created twice, none destroyed twice, none orphaned.

Run as a plugin process::

    python journal_plugin.py NAME DIR JOURNAL

Each line of JOURNAL is ``{"op": "provision"|"destroy", "id": ..., "sha": ..., "ok": bool}``
(``sha``: the instance's ``infrakit.config_sha`` tag when it was provisioned).

While a file named ``refuse-destroys`` is beside DIR, every Destroy fails (a provider that
cannot destroy for now).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import threading
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit.plugins.instance import file
from infrakit.spi import instance

HERE = pathlib.Path(__file__).resolve()
REFUSE_DESTROYS = "refuse-destroys"


class Journaled:
    """``file.Plugin`` with a journal of its provisions and destroys."""

    def __init__(self, directory: pathlib.Path, journal: pathlib.Path) -> None:
        self.inner = file.Plugin(directory)
        self.journal = journal
        self.refusing = directory.parent / REFUSE_DESTROYS
        self._lock = threading.Lock()

    def _note(self, **entry: Any) -> None:
        line = (json.dumps(entry) + "\n").encode()
        with self._lock:
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def validate(self, properties: Any) -> None:
        self.inner.validate(properties)

    def provision(self, spec: instance.Spec) -> instance.ID:
        iid = self.inner.provision(spec)
        self._note(op="provision", id=iid, sha=spec.tags.get("infrakit.config_sha", ""), ok=True)
        return iid

    def label(self, iid: instance.ID, labels: dict[str, str]) -> None:
        self.inner.label(iid, labels)

    def destroy(self, iid: instance.ID) -> None:
        try:
            if self.refusing.exists():
                raise errors.TemporaryError(f"cannot destroy {iid} now ({self.refusing})")
            self.inner.destroy(iid)
        except Exception:
            self._note(op="destroy", id=iid, ok=False)
            raise
        self._note(op="destroy", id=iid, ok=True)

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        return await self.inner.describe_instances(tags, properties)


@dataclass
class Journal:
    """What a journal file says."""

    entries: list[dict[str, Any]]

    @classmethod
    def read(cls, path: pathlib.Path) -> Journal:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls([])
        return cls([json.loads(line) for line in text.splitlines() if line])

    def ids(self, op: str) -> list[str]:
        """IDs of every call of ``op`` (successful or not), in order."""
        return [e["id"] for e in self.entries if e["op"] == op]

    def provisioned_with(self, sha: str) -> set[str]:
        return {e["id"] for e in self.entries if e["op"] == "provision" and e["sha"] == sha}


def argv(name: str, directory: pathlib.Path, journal: pathlib.Path) -> list[str]:
    """How a test starts this plugin."""
    return [sys.executable, str(HERE), name, str(directory), str(journal)]


def main(args: list[str]) -> None:
    from infrakit.rpc import server

    name, directory, journal = args
    server.run(name, instance=Journaled(pathlib.Path(directory), pathlib.Path(journal)))


if __name__ == "__main__":
    main(sys.argv[1:])
