"""The demo's pieces together: vanilla prepares a web server, instance-process runs it, the
vanilla HTTP probe judges it, and a ``kill -9`` shows in Describe and in the verdict."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import sys
import time

from infrakit import testing
from infrakit.plugins.flavor import vanilla
from infrakit.plugins.instance import process
from infrakit.spi import flavor, instance


async def test_a_local_web_instance_is_healthy_until_killed(
    tmp_path: pathlib.Path, cleanup: None
) -> None:
    base = testing.free_port()
    properties = {
        "Tags": {"port": "{{ " + str(base) + " + index.Sequence }}", "tier": "web"},
        "Init": [f"exec {sys.executable} -m http.server {{{{ spec.Tags.port }}}} "
                 "--bind 127.0.0.1"],
        "Health": {"HTTP": "http://127.0.0.1:{{ instance.Tags.port }}/", "Timeout": "1s"},
    }
    web = vanilla.Plugin()
    await web.validate(properties, flavor.AllocationMethod(size=1))
    spec = await web.prepare(properties, instance.Spec(tags={"infrakit.group": "web"}),
                             flavor.AllocationMethod(size=1), flavor.Index(group="web"))
    assert spec.tags["port"] == str(base)

    plugin = process.Plugin(tmp_path / "state")
    try:
        iid = plugin.provision(spec)
        [member] = plugin.describe_instances({"infrakit.group": "web"}, properties=True)
        deadline = time.monotonic() + 15
        while await web.healthy(properties, member) != flavor.Health.HEALTHY:
            assert time.monotonic() < deadline, "the web server did not come up"
            await asyncio.sleep(0.1)

        os.kill(member.properties["Pid"], signal.SIGKILL)

        deadline = time.monotonic() + 5
        while plugin.describe_instances({"infrakit.group": "web"}):
            assert time.monotonic() < deadline, f"{iid} still described after kill -9"
            await asyncio.sleep(0.01)
        assert await web.healthy(properties, member) == flavor.Health.UNHEALTHY
    finally:
        plugin.close()
