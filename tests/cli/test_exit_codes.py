"""Every exit code of ``errors.EXIT_CODES`` from a real invocation, and the README lists them."""

from __future__ import annotations

import json
import pathlib
import re
import socket
from typing import Any

import pytest

from infrakit import errors, testing
from infrakit.spi import group, instance

README = pathlib.Path(__file__).parents[2] / "README.md"


class Raising(testing.FakeInstancePlugin):
    """Describe raises the error named by the tag ``raise``."""

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        kind = tags.get("raise")
        if kind == "crash":
            raise KeyError("disk")
        if kind:
            raise errors.BY_KIND[kind](f"{kind} from the plugin")
        return await super().describe_instances(tags, properties)


class Unconverged:
    def describe_group(self, gid: group.ID) -> group.Description:
        return group.Description(converged=False, status={"ID": gid, "Phase": "Converging"})

    def inspect_groups(self) -> list[group.Spec]:
        return []

    def commit_group(self, spec: group.Spec, pretend: bool) -> str:
        return "Managing 1 instances"

    def free_group(self, gid: group.ID) -> None: ...

    def destroy_group(self, gid: group.ID) -> None: ...


@pytest.fixture
def served(serve: Any, fake_flavor: testing.FakeFlavorPlugin) -> None:
    serve("fake", instance=Raising())
    serve("vanilla", flavor=fake_flavor)
    serve("group", group=Unconverged())


def spec(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "spec.json"
    path.write_text(text)
    return str(path)


CASES: dict[int, Any] = {
    0: lambda tmp: ("version",),
    1: lambda tmp: ("instance", "--name", "fake", "describe", "--tags", "raise=crash"),
    2: lambda tmp: ("instance", "--name", "fake", "provision", spec(tmp, '{"Tags": "x"}')),
    3: lambda tmp: ("instance", "--name", "fake", "describe", "instance-9"),
    4: lambda tmp: ("instance", "--name", "fake", "describe", "--tags", "raise=conflict"),
    5: lambda tmp: ("instance", "--name", "vanilla", "describe"),
    6: lambda tmp: ("instance", "--name", "dead", "describe"),
    7: lambda tmp: ("instance", "--name", "fake", "describe", "--tags", "raise=not_leader"),
    8: lambda tmp: ("group", "describe", "web", "--exit-status"),
    9: lambda tmp: ("group", "commit", spec(tmp, '{"ID": "web"}'), "--wait", "--timeout",
                    "300ms", "--interval", "100ms"),
}


def test_every_code_has_a_case_and_every_error_class_a_documented_code() -> None:
    documented = {code for code, _ in errors.EXIT_CODES}
    assert documented == set(CASES) | {130}  # 130: tests/cli/test_wait.py (SIGINT)
    assert {cls.exit_code for cls in errors.BY_KIND.values()} <= documented


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_exit_code_from_a_real_invocation(cli: Any, served: None, plugins_dir: pathlib.Path,
                                               tmp_path: pathlib.Path, code: int) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))  # bound, never listening: refused
    try:
        result = cli(*CASES[code](tmp_path))
    finally:
        dead.close()
    assert result.exit_code == code, result.stderr
    if code:
        assert result.stderr.splitlines()[-1].startswith("infrakit: ")
        assert "Traceback" not in result.stderr


def test_the_readme_documents_each_code_as_the_help_does() -> None:
    text = README.read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", section, flags=re.M))
    assert {int(code): meaning for code, meaning in rows.items()} == dict(errors.EXIT_CODES)


def test_instance_describe_id_prints_that_instance(cli: Any, serve: Any) -> None:
    plugin = testing.FakeInstancePlugin()
    plugin.add(tags={"tier": "web"})
    plugin.add(tags={"tier": "db"})
    serve("fake", instance=plugin)
    one = json.loads(cli("instance", "--name", "fake", "describe", "instance-000002",
                         "-o", "json").stdout)
    assert (one["ID"], one["Tags"]) == ("instance-000002", {"tier": "db"})
    missing = cli("instance", "--name", "fake", "describe", "instance-000009")
    assert (missing.exit_code, missing.stderr) == (
        3, "infrakit: no instance 'instance-000009' in plugin 'fake'\n")
