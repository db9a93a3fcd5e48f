"""The dynamic form ``infrakit <plugin-name> <verb>``: verbs from the plugin's interfaces."""

from __future__ import annotations

import json
import pathlib
import socket
from typing import Any

import pytest

from infrakit import errors, testing
from infrakit.spi import group

from .conftest import FakeGroup


@pytest.fixture
def counted(serve: Any, fake_instance: testing.FakeInstancePlugin,
            fake_flavor: testing.FakeFlavorPlugin, fake_group: FakeGroup) -> list[str]:
    """Three plugins; returns the methods they were called with, in order."""
    calls: list[str] = []
    for name, objects in (("instance-fake", {"instance": fake_instance}),
                          ("flavor-fake", {"flavor": fake_flavor}),
                          ("group-fake", {"group": fake_group})):
        running = serve(name, **objects)
        for method, handler in list(running.methods.items()):
            running.methods[method] = _counting(calls, method, handler)
    return calls


def _counting(calls: list[str], method: str, handler: Any) -> Any:
    async def counted(params: Any) -> Any:
        calls.append(method)
        return await handler(params)
    return counted


def test_help_lists_plugins_without_calling_them(cli: Any, counted: list[str],
                                                 plugins_dir: pathlib.Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))  # would fail if called
    try:
        result = cli("--help")
    finally:
        dead.close()
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1].split("Exit codes:")[0]  # not the epilog
    listed = [line.split()[0] for line in commands.splitlines() if line.strip()]
    assert listed == ["apply", "flavor", "group", "instance", "manager", "pki", "plugin", "up",
                      "version",
                      "dead",
                      "flavor-fake",
                      "group-fake", "instance-fake"]
    assert counted == []


@pytest.mark.parametrize(("plugin", "verbs"), [
    ("instance-fake", ["describe", "destroy", "provision", "validate"]),
    ("flavor-fake", ["healthy", "prepare", "validate"]),
    ("group-fake", ["abort", "commit", "describe", "destroy", "destroy-instances", "free",
                    "inspect", "ls", "pause", "resume", "set-size", "size"]),
])
def test_a_plugin_offers_the_verbs_of_its_interfaces(cli: Any, counted: list[str], plugin: str,
                                                     verbs: list[str]) -> None:
    result = cli(plugin, "--help")
    offered = [line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines()
               if line.strip()]
    assert offered == verbs
    assert counted == ["Handshake.Implements"]


def test_dynamic_and_named_forms_print_the_same(cli: Any, counted: list[str],
                                                fake_instance: testing.FakeInstancePlugin) -> None:
    fake_instance.add(tags={"tier": "web"})
    dynamic = cli("instance-fake", "describe", "-q")
    named = cli("instance", "--name", "instance-fake", "describe", "-q")
    assert dynamic.stdout == named.stdout == \
        "instance-000001               \t  -                           \ttier=web\n"


def test_dynamic_group_and_flavor_verbs_work(cli: Any, counted: list[str],
                                             tmp_path: pathlib.Path) -> None:
    spec = tmp_path / "g.json"
    spec.write_text('{"ID": "w", "Properties": {"Allocation": {"Size": 1}}}')
    assert cli("group-fake", "commit", str(spec)).stdout == "Committed w: Managing 1 instances\n"
    assert cli("flavor-fake", "validate", "-", input="{}").stdout == "validate:ok\n"


def test_a_dynamic_subtype_sends_its_type(cli: Any, serve: Any) -> None:
    east = testing.FakeInstancePlugin(prefix="east-")
    serve("typed", instance={"": testing.FakeInstancePlugin(), "east": east})
    assert cli("typed/east", "provision", "-", input="{}").stdout == "east-000001\n"


def test_an_unknown_verb_lists_what_the_plugin_offers(cli: Any, counted: list[str]) -> None:
    result = cli("flavor-fake", "describe")
    assert result.exit_code == errors.UsageError.exit_code
    assert result.stderr == ("infrakit: plugin 'flavor-fake' has no verb 'describe'; it offers: "
                             "healthy, prepare, validate (it implements Flavor/0.1.0)\n")


def test_a_plugin_with_several_interfaces_gets_a_group_per_interface(
        cli: Any, serve: Any, fake_instance: testing.FakeInstancePlugin,
        fake_group: FakeGroup) -> None:
    serve("both", instance=fake_instance, group=fake_group)
    fake_instance.add(tags={})
    fake_group.commit_group(group.Spec.from_wire({"ID": "w", "Properties": {}}), False)
    offered = cli("both", "--help").stdout
    assert "  group " in offered and "  instance " in offered
    # a verb both interfaces have goes to the first in the order Instance, Flavor, Group
    assert cli("both", "describe", "-q").stdout.startswith("instance-000001")
    assert cli("both", "group", "ls", "-q").stdout == "w\n"
    assert json.loads(cli("both", "group", "describe", "w", "-o", "json").stdout)["Converged"]


def test_a_dead_plugin_named_on_the_command_line_is_unavailable(
        cli: Any, plugins_dir: pathlib.Path) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(plugins_dir / "dead"))
    try:
        result = cli("dead", "describe")
    finally:
        dead.close()
    assert result.exit_code == errors.Unavailable.exit_code
    assert result.stderr.startswith("infrakit: dead: cannot reach plugin at ")
