"""``--help`` on every command, without ``--name`` and without any plugin; ``--version``."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import click
import pytest

from infrakit import errors
from infrakit.cli import main


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(main.cli))


def test_the_walk_covers_the_tree() -> None:
    assert ("group", "commit") in COMMANDS and ("instance", "describe") in COMMANDS
    assert ("plugin", "start") in COMMANDS and len(COMMANDS) > 30


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "infrakit")
def test_help_works_on_every_command_in_an_empty_plugins_dir(
        cli: Any, plugins_dir: pathlib.Path, path: tuple[str, ...]) -> None:
    result = cli(*path, "--help")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith(f"Usage: infrakit {' '.join(path)}".rstrip())


def test_top_level_help_lists_every_exit_code(cli: Any, plugins_dir: pathlib.Path) -> None:
    text = cli("--help").stdout
    for code, meaning in errors.EXIT_CODES:
        assert f"  {code:<4} {meaning}" in text


def test_a_verb_without_name_still_needs_it_to_run(cli: Any, plugins_dir: pathlib.Path) -> None:
    result = cli("flavor", "validate", "-", input="{}")
    assert (result.exit_code, result.stderr) == (2, "infrakit: Missing option '--name'.\n")


def test_version_flag_as_a_process(plugins_dir: pathlib.Path) -> None:
    done = subprocess.run([sys.executable, "-m", "infrakit.cli.main", "--version"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)})
    version = importlib.metadata.version("infrakit")
    assert (done.returncode, done.stdout) == (0, f"infrakit {version} (protocol InfraKit v0.5)\n")
    helped = subprocess.run([sys.executable, "-m", "infrakit.cli.main", "instance", "describe",
                             "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "INFRAKIT_PLUGINS_DIR": str(plugins_dir)})
    assert helped.returncode == 0 and helped.stdout.startswith("Usage: infrakit instance ")
