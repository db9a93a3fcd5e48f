"""What the probe said reaches the group's reasons: flavor-vanilla's HTTP probe of a real
local server, over RPC (Flavor.Healthy's ``Reason``), shows in the Unhealthy phase, in the
replacement's action and in the crash loop's reason."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from infrakit.group import controller, status
from infrakit.plugins.flavor import vanilla
from infrakit.rpc import discovery, server
from infrakit.spi import group
from infrakit.testing import FakeInstancePlugin, resolver

GID = group.ID("web")


@pytest.fixture
async def failing_site(http_site: Callable[[list[web.RouteDef]], Awaitable[int]]) -> int:
    """A real HTTP server on 127.0.0.1 whose /health answers 500."""
    async def health(request: web.Request) -> web.Response:
        return web.Response(status=500)

    return await http_site([web.get("/health", health)])


@pytest.fixture
async def served_vanilla(plugins_dir: pathlib.Path) -> AsyncIterator[None]:
    async with server.Server("flavor-vanilla", flavor=vanilla.Plugin(),
                             plugins_dir=plugins_dir):
        yield


def web_spec(port: int, **health: Any) -> group.Spec:
    return group.Spec(id=GID, properties={
        "Instance": {"Plugin": "instance-fake", "Properties": {}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Health": {"HTTP": f"http://127.0.0.1:{port}/health", "Timeout": "2s"}}},
        "Allocation": {"Size": 1},
        "Health": {"Interval": "50ms", "StartupGrace": "0s", "MaxUnhealthy": 1, **health}})


async def wait_for(found: Callable[[], Any], *, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await found()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout}s (last: {last!r})")


@pytest.fixture
async def ctl(served_vanilla: None, plugins: discovery.Plugins
              ) -> AsyncIterator[controller.Controller]:
    found = controller.Controller(resolver({"instance-fake": FakeInstancePlugin()}),
                                  plugins.flavor, poll_interval=0.05)
    try:
        yield found
    finally:
        await found.close()


async def test_the_unhealthy_reason_says_what_the_http_probe_got(
        ctl: controller.Controller, failing_site: int) -> None:
    await ctl.commit_group(web_spec(failing_site, UnhealthyAfter="1h"), False)

    async def unhealthy() -> status.Status | None:
        found = await ctl.status(GID)
        return found if found.phase == status.Phase.UNHEALTHY else None

    found = await wait_for(unhealthy, what="Unhealthy phase")
    member = found.instances[0].id
    assert found.reason == (
        f"{member} is Unhealthy (Flavor.Healthy of flavor-vanilla: GET "
        f"http://127.0.0.1:{failing_site}/health: 500 Internal Server Error); replaced once "
        "Unhealthy for 3600s after a 0s grace")


async def test_replacements_and_the_crash_loop_say_what_the_probe_got(
        ctl: controller.Controller, failing_site: int) -> None:
    await ctl.commit_group(web_spec(failing_site, UnhealthyAfter="0s", CrashLoop={
        "Threshold": 2, "YoungAge": "1h", "BackoffBase": "1h", "MaxBackoff": "1h"}), False)
    said = f"GET http://127.0.0.1:{failing_site}/health: 500 Internal Server Error"

    async def looping() -> status.Status | None:
        found = await ctl.status(GID)
        return found if found.phase == status.Phase.CRASH_LOOPING else None

    found = await wait_for(looping, what="CrashLooping phase")
    assert f"Flavor.Healthy of flavor-vanilla answered Unhealthy: {said} (unhealthy for" \
        in found.reason
    replaced = [a.message for a in found.actions if a.kind == "replaced"]
    assert replaced and all(m.endswith(f": {said}") for m in replaced), replaced
