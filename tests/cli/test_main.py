"""The root command: version, help, rich tables on a terminal."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest

from infrakit import testing
from infrakit.cli import render


def test_version_prints_ours_and_the_protocol(cli: Any) -> None:
    version = importlib.metadata.version("infrakit")
    assert cli("version").stdout == f"Version: {version}\nProtocol: InfraKit v0.5\n"
    assert json.loads(cli("version", "-o", "json").stdout) == {"Version": version,
                                                               "Protocol": "InfraKit v0.5"}


def test_no_command_shows_help(cli: Any) -> None:
    result = cli()
    assert "Usage: infrakit [OPTIONS] COMMAND [ARGS]..." in result.output


def test_a_terminal_gets_a_rich_table_with_the_same_cells(
        cli: Any, serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = testing.FakeInstancePlugin()
    plugin.add(tags={"tier": "web"}, logical_id="db1")
    serve("fake", instance=plugin)
    monkeypatch.setattr(render, "_is_terminal", lambda: True)
    lines = cli("instance", "--name", "fake", "describe").stdout.splitlines()
    assert lines[0].split() == ["ID", "LOGICAL", "TAGS"]
    assert ["instance-000001", "db1", "tier=web"] in [line.split() for line in lines]
    quiet = cli("instance", "--name", "fake", "describe", "-q").stdout
    assert quiet.split("\t")[0].strip() == "instance-000001"  # -q stays plain for scripts
