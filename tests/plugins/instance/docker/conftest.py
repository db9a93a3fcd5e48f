"""Fixtures of the docker tests: one private dockerd per session, a busybox image built
locally, and a plugin whose containers are all removed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import privatedocker
import pytest

from infrakit import testing
from infrakit.plugins.instance.docker import engine, plugin


@pytest.fixture(scope="session")
def dockerd() -> Iterator[privatedocker.Dockerd]:
    """A private dockerd in its own network namespace, with ``privatedocker.IMAGE`` on it."""
    reason = privatedocker.missing()
    if reason is not None:
        testing.missing_engine(f"docker tests: {reason}")  # make test fails, a developer skips
    engine_ = privatedocker.Dockerd()
    try:
        engine_.start()
        privatedocker.build_busybox_image(engine_, privatedocker.IMAGE)
        yield engine_
    finally:
        engine_.close()


@pytest.fixture
async def docker(dockerd: privatedocker.Dockerd) -> AsyncIterator[plugin.Plugin]:
    """instance-docker on the private engine; every container it made is removed after."""
    try:
        yield plugin.Plugin(engine.Engine(dockerd.url))
    finally:
        if not dockerd.ping():
            dockerd.start()  # a test stopped it
        leftovers = dockerd.containers(f"label={plugin.MANAGED}")
        if leftovers:
            dockerd.docker("rm", "-f", "-v", *leftovers)
