"""Fixtures for the manager's stores and leadership: a real etcd on loopback (shared, a
test's own to stop and restart, or a 3-member cluster), contender processes, one harness per
store backend so the same behaviours run on both, a manager in-process over fakes
(:mod:`inprocess`), and managers as local processes (:mod:`local_cluster`,
:mod:`pair_cluster`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import elections
import pytest
from inprocess import Board, Node
from local_cluster import Local
from pair_cluster import Pair
from store_harness import Harness, etcd_raw, file_raw

from infrakit import testing_etcd
from infrakit.manager import etcd, leader_etcd, store_etcd, store_file
from infrakit.testing import FakeFlavorPlugin, FakeInstancePlugin


@pytest.fixture(scope="session")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[testing_etcd.EtcdProcess]:
    """One etcd for the whole session; tests keep apart by key prefix (:func:`prefix`)."""
    member = testing_etcd.EtcdProcess(tmp_path_factory.mktemp("etcd"))
    member.start()
    try:
        yield member
    finally:
        member.stop()


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[testing_etcd.EtcdProcess]:
    """An etcd of this test's own, for tests that stop, pause or restart it."""
    member = testing_etcd.EtcdProcess(tmp_path / "etcd")
    member.start()
    try:
        yield member
    finally:
        member.stop()


CLUSTER_FLAGS = ("--heartbeat-interval", "50", "--election-timeout", "500")
"""A quicker raft re-election than etcd's default (1 s), as on a fast LAN."""


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[testing_etcd.EtcdCluster]:
    """Three etcd members of this test's own on loopback, to pause one at a time."""
    cluster = testing_etcd.EtcdCluster(tmp_path / "cluster", size=3, flags=CLUSTER_FLAGS)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def prefix() -> str:
    """Keys of this test only."""
    return f"test/{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def client(etcd_member: testing_etcd.EtcdProcess) -> AsyncIterator[etcd.Client]:
    async with etcd.Client(etcd_member.url, timeout=2.0) as c:
        yield c


@pytest.fixture
async def leading(client: etcd.Client, prefix: str) -> AsyncIterator[leader_etcd.EtcdLeadership]:
    """An etcd leadership that already leads (on this test's own leader key)."""
    lead = leader_etcd.EtcdLeadership(client, "m1", key=prefix + "leader", ttl=2)
    await lead.start()
    try:
        await elections.eventually(lead.is_leader, timeout=5)
        yield lead
    finally:
        await lead.stop()


@pytest.fixture
async def contenders() -> AsyncIterator[elections.Contenders]:
    """Starts contender processes; kills every one by pid at teardown."""
    procs = elections.Contenders()
    try:
        yield procs
    finally:
        await procs.kill_all()


@pytest.fixture
def file_harness(tmp_path: Path) -> Harness:
    root = tmp_path / "store"
    return Harness("file", store_file.FileStore(root, history_limit=3), file_raw(root))


@pytest.fixture
async def etcd_harness(client: etcd.Client, leading: leader_etcd.EtcdLeadership,
                       prefix: str) -> Harness:
    s = store_etcd.EtcdStore(client, token=leading.token, prefix=prefix + "configs/",
                             history_limit=3)
    return Harness("etcd", s, etcd_raw(client, s))


@pytest.fixture(params=["file", "etcd"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each store backend in turn, writable (the etcd one leads), keeping 3 per history."""
    h: Harness = request.getfixturevalue(f"{request.param}_harness")
    return h


@pytest.fixture
async def local(tmp_path: Path, plugins_dir: Path) -> AsyncIterator[Local]:
    """Managers, backends and plugins as local processes in a short private plugins dir."""
    running = Local(tmp_path, plugins_dir)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def pair(tmp_path: Path, plugins_dir: Path) -> AsyncIterator[Pair]:
    """Two managers on the leader file, their backends and plugins, as local processes
    (started by the test: :meth:`Pair.start`)."""
    running = Pair(tmp_path, plugins_dir)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
def instances() -> FakeInstancePlugin:
    return FakeInstancePlugin()


@pytest.fixture
def flavors() -> FakeFlavorPlugin:
    return FakeFlavorPlugin()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
async def node(store_dir: Path, instances: FakeInstancePlugin,
               flavors: FakeFlavorPlugin) -> AsyncIterator[Node]:
    """One manager in-process (not yet leading: :meth:`Node.lead`) over the fakes, its file
    store in ``store_dir``."""
    one = Node("mgr-1", Board(), store_dir, instances=instances, flavors=flavors)
    await one.manager.start()
    try:
        yield one
    finally:
        await one.close()
