"""Fixtures shared by every test directory."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from infrakit.rpc import discovery

SLOW = {
    "tests/e2e/": "stacks of plugin processes driven through the CLI",
    "tests/manager/test_failover_": "managers, backends and plugins as processes",
    "tests/manager/test_up.py": "`infrakit up` process trees",
    "tests/manager/test_up_store.py": "`infrakit up` restarted against its store",
    "tests/manager/test_etcd": "real etcd servers (one member, then a cluster)",
    "tests/manager/test_leader_etcd.py": "elections on a real etcd, leaders killed",
    "tests/manager/test_store_etcd.py": "a real etcd server",
    "tests/manager/test_forward_tcp.py": "managers on two plugins dirs over mTLS, a real etcd",
    "tests/rpc/test_tls_plugins.py": "plugin processes listening on TCP with mTLS",
    "tests/plugins/instance/test_instance_host.py": "hosts in namespaces",
    "tests/plugins/flavor/swarm/": "swarms of dockerds on hosts in namespaces",
    "tests/e2e/test_managers_across_hosts.py": "managers, etcd and groups on three hosts",
    "tests/plugins/instance/aws/": "a real moto_server, plugin processes",
    "tests/plugins/instance/terraform/": "real terraform applies",
    "tests/plugins/instance/vagrant/": "real vagrant on a private dockerd",
    "tests/plugins/flavor/zookeeper/": "real ZooKeeper ensembles",
    "tests/plugins/flavor/etcd/": "real etcd clusters as group members",
    "tests/plugins/flavor/mariadb/": "real MariaDB primaries and replicas",
    "tests/plugins/instance/docker/test_image.py": "`make image` on a private dockerd",
}
"""Tests marked ``slow`` by where they are (``make quick`` leaves them out), and why."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(tuple(SLOW)):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def plugins_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A short private plugins dir (unix socket paths must stay under 108 bytes)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))
    directory.chmod(0o700)
    monkeypatch.setenv("INFRAKIT_PLUGINS_DIR", str(directory))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def plugins(plugins_dir: pathlib.Path) -> AsyncIterator[discovery.Plugins]:
    """Typed RPC clients for the plugins in ``plugins_dir``, closed at the end."""
    found = discovery.Plugins(plugins_dir)
    try:
        yield found
    finally:
        await found.close()


HTTPSite = Callable[[list[web.RouteDef]], Awaitable[int]]


@pytest.fixture
async def http_site() -> AsyncIterator[HTTPSite]:
    """Starts real HTTP servers on 127.0.0.1 (for health probes): ``port = await
    http_site([web.get("/health", handler)])``; each is cleaned up at the end of the test."""
    runners: list[web.AppRunner] = []

    async def start(routes: list[web.RouteDef]) -> int:
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port: int = runner.addresses[0][1]
        return port

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()
