"""Typed proxies reuse a large answer that came back unchanged instead of parsing it again."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
from rpc_helpers import HYGIENE

from infrakit.rpc import client, server
from infrakit.rpc import instance as instance_rpc
from infrakit.spi import instance

pytestmark = HYGIENE


class Listing:
    """Describe answers ``count`` instances whose tag ``v`` is ``version``."""

    def __init__(self) -> None:
        self.count, self.version = 1000, "1"

    def describe_instances(self, tags: dict[str, str],
                           properties: bool = False) -> list[instance.Description]:
        return [instance.Description(id=instance.ID(f"instance-{n}"),
                                     tags={"v": self.version, **tags})
                for n in range(self.count)]


@pytest.fixture
async def listing(plugins_dir: pathlib.Path) -> AsyncIterator[tuple[Listing, client.Client]]:
    plugin = Listing()
    async with server.Server("listing", instance=plugin, plugins_dir=plugins_dir):
        rpc = client.Client(plugins_dir / "listing")
        try:
            yield plugin, rpc
        finally:
            await rpc.close()


async def test_an_unchanged_large_answer_is_reused_in_a_fresh_list(
        listing: tuple[Listing, client.Client]) -> None:
    _, rpc = listing
    proxy_ = instance_rpc.Client(rpc)
    first = await proxy_.describe_instances({"g": "a"})
    first.append(first[0])  # a caller changing its list changes nobody else's
    second = await proxy_.describe_instances({"g": "a"})
    assert len(second) == 1000 and second is not first
    assert all(a is b for a, b in zip(first, second, strict=False))  # not parsed again


@pytest.mark.parametrize("change", ["answer", "params", "small"])
async def test_a_changed_or_small_answer_is_parsed_anew(
        listing: tuple[Listing, client.Client], change: str) -> None:
    plugin, rpc = listing
    proxy_ = instance_rpc.Client(rpc)
    tags = {"g": "a"}
    if change == "small":
        plugin.count = 3  # under proxy.REUSE_FROM
    first = await proxy_.describe_instances(tags)
    if change == "answer":
        plugin.version = "2"
    elif change == "params":
        tags = {"g": "b"}
    second = await proxy_.describe_instances(tags)
    assert not any(a is b for a, b in zip(first, second, strict=True))
    if change == "answer":
        assert {m.tags["v"] for m in second} == {"2"}
    assert len(rpc.answers) <= 2
