"""The plugin-authoring example in the README runs as written, as its own process."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import subprocess
import sys

from infrakit import errors
from infrakit.rpc import discovery, sockets
from infrakit.spi import flavor, instance

ROOT = pathlib.Path(__file__).parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example: plugin -->\n```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "README has no plugin example block"
    return match.group(1)


def test_readme_example_is_the_file_in_examples() -> None:
    assert readme_example() == (ROOT / "examples" / "flavor_stamp.py").read_text()


async def test_readme_example_serves_a_working_flavor(plugins_dir: pathlib.Path,
                                                      tmp_path: pathlib.Path) -> None:
    script = tmp_path / "plugin.py"
    script.write_text(readme_example())
    process = subprocess.Popen([sys.executable, str(script)],
                               env={**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)})
    plugins = discovery.Plugins(plugins_dir)
    try:
        for _ in range(200):
            if (plugins_dir / "flavor-stamp").exists() and sockets.is_live(
                    plugins_dir / "flavor-stamp"):
                break
            await asyncio.sleep(0.05)
        stamp = plugins.flavor("flavor-stamp")
        one = flavor.AllocationMethod(size=1)
        await stamp.validate({"Owner": "ops"}, one)
        try:
            await stamp.validate({"Owner": 7}, one)
            raise AssertionError("validate accepted a bad owner")
        except errors.InvalidError as exc:
            assert exc.message == "Properties.Owner: expected a string"
        spec = await stamp.prepare({"Owner": "ops"}, instance.Spec(init="apt update"), one,
                                   flavor.Index(group="web", sequence=2))
        assert spec.tags == {"owner": "ops"}
        assert spec.init == "apt update\necho 'instance 2 of web, owned by ops'"
    finally:
        await plugins.close()
        process.terminate()
        process.wait(timeout=10)
