"""Fixtures of the etcd flavor's tests: Debian's etcd, free ports on the test addresses
(127.0.0.21 … 127.0.0.25), members run from prepared Init scripts, and a stack of the
group plugin, instance-process and flavor-etcd as processes. Everything is stopped by pid,
also when a test fails."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from etcd_harness import FAST, Runner, Stack, free_port_pair, kill_recorded

from infrakit import errors, testing, testing_etcd


@pytest.fixture(scope="session")
def etcd_bin() -> str:
    try:
        return testing_etcd.etcd_binary()
    except errors.NotFoundError as exc:
        testing.missing_engine(exc.message)


@pytest.fixture
def props(etcd_bin: str, tmp_path: pathlib.Path) -> dict[str, Any]:
    """The flavor's Properties for this test: its own ports and data dir, a quick raft."""
    client, peer = free_port_pair()
    return {"ClientPort": client, "PeerPort": peer, "Binary": etcd_bin, "Flags": FAST,
            "DataDir": str(tmp_path / "data"), "ReconfigureTimeout": "25s"}


@pytest.fixture
def runner(tmp_path: pathlib.Path) -> Iterator[Runner]:
    """Runs prepared Init scripts as member processes; kills them all at the end."""
    run = Runner(tmp_path)
    try:
        yield run
    finally:
        run.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The group plugin (polling every 200ms), instance-process (state in ``work/procs``,
    waking the group when a member dies) and flavor-etcd, for the module's tests; every
    member process still running at the end is killed by the pid and start time its record
    holds."""
    sockets_dir = pathlib.Path(tempfile.mkdtemp(prefix="iketcd-"))
    work = tmp_path_factory.mktemp("etcd-stack")
    running = Stack(sockets_dir, work)
    state = work / "procs"
    try:
        running.start("instance-process", "infrakit-instance-process", "--dir", str(state),
                      "--notify", "group", "--log", "3")
        running.start("flavor-etcd", "infrakit-flavor-etcd", "--log", "4")
        running.start("group", "infrakit-group-default", "--poll-interval", "200ms",
                      "--log", "4")
        running.wait_ready()
        yield running
    finally:
        running.stop()
        kill_recorded(state)
        shutil.rmtree(sockets_dir, ignore_errors=True)
