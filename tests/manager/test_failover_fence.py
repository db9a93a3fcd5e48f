"""The backend's fence (``infrakit-group-default --manager NAME``): a real group plugin
process stops supervising within its fence interval once its manager says it does not
lead, hangs, or is gone, and refuses commits meanwhile; instances stay."""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator

import pytest
from journal_plugin import argv
from local_cluster import spec, until

from infrakit import errors
from infrakit import testing_cluster as cluster
from infrakit.rpc import discovery, server

FENCE = "200ms"


class FakeManager:
    """Answers Manager.IsLeader as the test says; can be made to hang."""

    def __init__(self) -> None:
        self.leader = True
        self.answering = asyncio.Event()
        self.answering.set()

    async def is_leader(self) -> bool:
        await self.answering.wait()
        return self.leader


class Setup:
    def __init__(self, root: pathlib.Path, plugins_dir: pathlib.Path) -> None:
        self.root = root
        self.processes = cluster.Cluster(plugins_dir, root / "logs")
        self.plugins = discovery.Plugins(plugins_dir, timeout=5.0)
        self.manager = FakeManager()
        self.server = server.Server("mgr", manager=self.manager, plugins_dir=plugins_dir)

    def files(self) -> int:
        return len(list((self.root / "files").glob("instance-*")))

    async def supervising(self) -> bool:
        return bool(await self.plugins.group("group-1").inspect_groups())


@pytest.fixture
async def setup(tmp_path: pathlib.Path) -> AsyncIterator[Setup]:
    plugins_dir = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))
    running = Setup(tmp_path, plugins_dir)
    try:
        await running.server.start()
        running.processes.start("instance-file", argv("instance-file", tmp_path / "files",
                                                      tmp_path / "journal"))
        running.processes.start("flavor-vanilla", cluster.entry_point("flavor-vanilla"))
        running.processes.backend("group-1", manager="mgr", poll="200ms", fence=FENCE)
        yield running
    finally:
        running.manager.answering.set()
        await running.plugins.close()
        running.processes.stop_all()
        await running.server.stop()
        shutil.rmtree(plugins_dir, ignore_errors=True)


async def committed(setup: Setup) -> None:
    await setup.plugins.group("group-1").commit_group(spec("v1", size=2), False)
    await until(lambda: setup.files() == 2, timeout=10, what="2 members")


async def test_a_backend_stops_supervising_when_its_manager_stops_leading(setup: Setup) -> None:
    await committed(setup)
    setup.manager.leader = False
    await until(lambda: _not(setup.supervising()), timeout=1.0, what="the fence")
    with pytest.raises(errors.NotLeaderError, match="fenced: manager 'mgr' is gone or does "
                                                    "not lead"):
        await setup.plugins.group("group-1").commit_group(spec("v1", size=3), False)
    assert setup.files() == 2  # the instances stay
    setup.manager.leader = True
    await setup.plugins.group("group-1").commit_group(spec("v1", size=2), False)
    assert await setup.supervising()


async def test_a_backend_stops_supervising_when_its_manager_hangs(setup: Setup) -> None:
    await committed(setup)
    setup.manager.answering.clear()  # like a SIGSTOPped manager: connects, never answers
    await until(lambda: _not(setup.supervising()), timeout=1.5, what="the fence")


async def test_a_backend_stops_supervising_when_its_manager_is_gone(setup: Setup) -> None:
    await committed(setup)
    await setup.server.stop()
    await until(lambda: _not(setup.supervising()), timeout=1.0, what="the fence")
    assert setup.files() == 2


async def _not(value: object) -> bool:
    assert asyncio.iscoroutine(value)
    return not await value


def test_the_backend_refuses_a_bad_fence_interval() -> None:
    done = subprocess.run([sys.executable, "-m", "infrakit.group.serve", "--manager", "m",
                           "--fence-interval", "0s"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert done.stderr == "infrakit-group-default: --fence-interval must be positive, got 0s\n"
