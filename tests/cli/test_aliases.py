"""The original binaries' names (``infrakit-instance-file`` …) and the entry-point runner."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from infrakit.cli import aliases, entry
from infrakit.plugins.flavor import combo, vanilla
from infrakit.plugins.instance import file


@pytest.mark.parametrize(("alias", "module"), [
    (aliases.instance_file, file),
    (aliases.flavor_vanilla, vanilla),
    (aliases.flavor_combo, combo),
])
def test_an_alias_hands_its_flags_to_the_plugins_run(monkeypatch: pytest.MonkeyPatch,
                                                     alias: Any, module: Any) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(module, "run", seen.append)
    monkeypatch.setattr(sys, "argv", ["infrakit-x", "--dir", "/d", "--name", "n", "--log", "5"])
    alias()
    assert seen == [["--dir", "/d", "--name", "n", "--log", "5"]]


def test_the_entry_runner_calls_the_named_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(vanilla, "run", seen.append)
    entry.main(["flavor-vanilla", "--name", "v2"])
    assert seen == [["--name", "v2"]]


@pytest.mark.parametrize(("argv", "code", "message"), [
    ([], 2, "usage: python -m infrakit.cli.entry NAME [ARGS...]\n"),
    (["nosuch"], 3, "infrakit: no 'infrakit.plugins' entry point named 'nosuch'\n"),
])
def test_the_entry_runner_refuses_what_it_cannot_run(capsys: pytest.CaptureFixture[str],
                                                    argv: list[str], code: int,
                                                    message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        entry.main(argv)
    assert stopped.value.code == code
    assert capsys.readouterr().err == message
