"""``rpc.listing``: one row per plugin and interface (and sub-type); a dead socket's row says
why it did not answer."""

from __future__ import annotations

import asyncio
import pathlib
import socket

from infrakit import testing
from infrakit.rpc import listing, server


async def test_listing_shows_each_interface_and_subtype(plugins_dir: pathlib.Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))
    plugin = testing.FakeInstancePlugin()
    try:
        async with server.Server("mem", instance={"": plugin, "east": plugin},
                                 flavor=testing.FakeFlavorPlugin(), plugins_dir=plugins_dir):
            rows = await asyncio.to_thread(listing.rows, plugins_dir)
    finally:
        dead.close()
    assert [(row.interface, row.name, row.error is None) for row in rows] == [
        (None, "dead", False),
        ("Flavor/0.1.0", "mem", True),
        ("Instance/0.5.0", "mem", True),
        ("Instance/0.5.0", "mem/east", True),
    ]
    assert rows[0].error is not None and "Connection refused" in rows[0].error
