"""Fixtures for the group controller's tests: fakes, fake time, specs and members, and what
the event loop reports as unhandled."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from infrakit.group import controller, tags
from infrakit.spi import group, instance
from infrakit.testing import FakeClock, FakeFlavorPlugin, FakeInstancePlugin, resolver

GID = group.ID("workers")


class NoJitter(random.Random):
    """Backoff waits exactly as configured."""

    def random(self) -> float:
        return 0.0


def spec(*, size: int | None = 3, ids: list[str] | None = None, note: str = "v1",
         gid: str = GID, **sections: Any) -> group.Spec:
    """A group spec for the fakes; policy sections as keyword arguments (``Health={...}``)."""
    allocation: dict[str, Any] = {"LogicalIDs": ids} if ids is not None else {"Size": size}
    return group.Spec(id=group.ID(gid), properties={
        "Instance": {"Plugin": "instance-fake", "Properties": {"Note": note}},
        "Flavor": {"Plugin": "flavor-fake", "Properties": {"Init": ["echo hi"],
                                                           "Tags": {"tier": "web"}}},
        "Allocation": allocation, **sections})


def member(iid: str, *, sha: str = "x", lid: str | None = None,
           **extra: str) -> instance.Description:
    """A member description for the pure tests."""
    return instance.Description(
        id=instance.ID(iid), logical_id=instance.LogicalID(lid) if lid else None,
        tags={tags.GROUP: GID, tags.CONFIG_SHA: sha, **extra})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def instances(clock: FakeClock) -> FakeInstancePlugin:
    return FakeInstancePlugin(clock=clock)


@pytest.fixture
def flavors(clock: FakeClock) -> FakeFlavorPlugin:
    return FakeFlavorPlugin(clock=clock)


@pytest.fixture
async def ctl(clock: FakeClock, instances: FakeInstancePlugin,
              flavors: FakeFlavorPlugin) -> AsyncIterator[controller.Controller]:
    found = controller.Controller(resolver({"instance-fake": instances}),
                                  resolver({"flavor-fake": flavors}),
                                  poll_interval=10.0, clock=clock, rng=NoJitter())
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture
async def unhandled() -> AsyncIterator[list[str]]:
    """What the event loop's exception handler is told during the test (collected at the
    end: a failed task reports an unretrieved exception only when it is collected)."""
    seen: list[str] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: seen.append(str(context.get("message"))))
    try:
        yield seen
    finally:
        gc.collect()
        loop.set_exception_handler(previous)


def members(instances: FakeInstancePlugin, gid: str = GID) -> list[instance.Description]:
    """The group's instances in the fake, by ID."""
    return instances.matching({tags.GROUP: gid})


def shas(instances: FakeInstancePlugin, gid: str = GID) -> list[str]:
    """The config hash of each member, by ID."""
    return [tags.config_sha(m) for m in members(instances, gid)]
