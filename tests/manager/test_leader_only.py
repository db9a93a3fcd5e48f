"""Only the leader acts, on every path, with real processes: a manager, its fenced backend,
a journaling instance-file plugin and flavor-vanilla in a private plugins dir.

- With the manager hung (``SIGSTOP``), the backend called directly refuses every change
  (each with a clear NotLeaderError within its fence interval) and destroys nothing; once
  the manager runs again it supervises the group again.
- A manager whose store cannot be read keeps trying to take over, says so through
  ``infrakit manager leader`` and ``manager inspect``, and takes over once the store is
  repaired.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from journal_plugin import Journal, argv
from local_cluster import GID, spec, until

from infrakit import errors
from infrakit import testing_cluster as cluster
from infrakit.manager import store_file
from infrakit.rpc import discovery
from infrakit.spi import group

FENCE = "250ms"
REFUSED = "fenced: manager 'mgr' is gone or does not lead"


class Setup:
    """The processes of one test; :meth:`start` once the store is in place."""

    def __init__(self, root: pathlib.Path, plugins_dir: pathlib.Path) -> None:
        self.root = root
        self.plugins_dir = plugins_dir
        self.store_dir = root / "store"
        self.journal_path = root / "journal.jsonl"
        self.processes = cluster.Cluster(plugins_dir, root / "logs")
        self.plugins = discovery.Plugins(plugins_dir, timeout=5.0)

    def start(self) -> None:
        procs = self.processes
        procs.start("instance-file", argv("instance-file", self.root / "files",
                                          self.journal_path))
        procs.start("flavor-vanilla", cluster.entry_point("flavor-vanilla"))
        procs.backend("group", manager="mgr", poll="200ms", fence=FENCE)
        procs.manager("mgr", backend="group", fence=FENCE, state_poll="200ms",
                      election=["os", "--flock", "--leader-file", str(self.root / "lock"),
                                "--store-dir", str(self.store_dir)])

    def members(self) -> list[str]:
        return sorted(p.name for p in (self.root / "files").glob("instance-*"))

    async def supervising(self) -> bool:
        return any(s.id == GID for s in await self.plugins.group("group").inspect_groups())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "INFRAKIT_PLUGINS_DIR": str(self.plugins_dir)}
        return subprocess.run([sys.executable, "-m", "infrakit.cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=30)


@pytest.fixture
async def setup(tmp_path: pathlib.Path) -> AsyncIterator[Setup]:
    plugins_dir = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))
    running = Setup(tmp_path, plugins_dir)
    try:
        yield running
    finally:
        await running.plugins.close()
        running.processes.stop_all()  # CONTinues a stopped manager first
        shutil.rmtree(plugins_dir, ignore_errors=True)


Call = Callable[[Any, list[str]], Awaitable[Any]]

CHANGES: list[tuple[str, Call]] = [
    ("DestroyGroup", lambda g, ids: g.destroy_group(GID)),
    ("DestroyInstances", lambda g, ids: g.destroy_instances(GID, ids[:1])),
    ("SetSize", lambda g, ids: g.set_size(GID, 0)),
    ("FreeGroup", lambda g, ids: g.free_group(GID)),
    ("Pause", lambda g, ids: g.pause(GID)),
    ("Resume", lambda g, ids: g.resume(GID)),
    ("Abort", lambda g, ids: g.abort(GID)),
    ("CommitGroup", lambda g, ids: g.commit_group(spec("v1", size=3), False)),
]


async def test_a_backend_refuses_every_change_while_its_manager_is_stopped(
        setup: Setup) -> None:
    setup.start()
    await until(lambda: setup.plugins.group("mgr").commit_group(spec("v1", size=2), False),
                timeout=15, what="the manager to take the commit")
    await until(lambda: len(setup.members()) == 2, timeout=15, what="2 members")
    ids = setup.members()
    backend = setup.plugins.group("group")

    manager = setup.processes.procs["mgr"]
    manager.send_signal(signal.SIGSTOP)
    try:
        for name, call in CHANGES:  # at once: the fence may not have stood down yet
            with pytest.raises(errors.NotLeaderError, match=REFUSED) as refused:
                await call(backend, ids)
            assert f"{name} refused" in refused.value.message
        await until(lambda: _not(setup.supervising()), timeout=5, what="the stand-down")
        with pytest.raises(errors.NotLeaderError, match=REFUSED):
            await backend.destroy_group(GID)
        assert setup.members() == ids
        assert Journal.read(setup.journal_path).ids("destroy") == []
    finally:
        manager.send_signal(signal.SIGCONT)

    await until(setup.supervising, timeout=10, what="the group supervised again")
    assert await backend.size(GID) == 2 and setup.members() == ids


async def test_a_take_over_from_an_unreadable_store_retries_says_why_and_completes(
        setup: Setup) -> None:
    config = setup.store_dir / store_file.CONFIG
    config.parent.mkdir()
    config.write_text('{"Groups": ')
    setup.start()

    def reported() -> str | None:
        found = setup.cli("manager", "--name", "mgr", "leader")
        status = [line for line in found.stdout.splitlines() if line.startswith("Status:")]
        return status[0] if status else None

    status = await until(reported, timeout=15, what="a take-over status")
    assert status.startswith(f"Status:  taking over: cannot read the store; last error: "
                             f"corrupt store {config}")
    assert "; next try in " in status
    inspected = setup.cli("manager", "--name", "mgr", "inspect")
    assert inspected.returncode == errors.TemporaryError.exit_code
    assert inspected.stderr.startswith("infrakit: manager 'mgr' leads but is still taking "
                                       "over: cannot read the store; last error: corrupt store")
    assert inspected.stdout == ""

    good = {"Groups": {GID: {"Plugin": "group", "Properties": spec("v1", size=1).to_wire()}}}
    config.write_text(json.dumps(good))
    await until(lambda: setup.cli("manager", "--name", "mgr", "inspect").returncode == 0,
                timeout=40, what="the take-over to complete")
    listed = json.loads(setup.cli("manager", "--name", "mgr", "inspect").stdout)
    assert [group.Spec.from_wire(entry["Properties"]).id for entry in listed] == [GID]
    assert reported() is None
    await until(lambda: len(setup.members()) == 1, timeout=15, what="1 member")


async def _not(value: Awaitable[bool]) -> bool:
    return not await value
