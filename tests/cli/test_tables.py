"""Rich tables on a terminal never break an ID mid-word, however narrow the terminal."""

from __future__ import annotations

from typing import Any

import pytest

from infrakit import testing
from infrakit.cli import render


def test_a_narrow_terminal_folds_the_tags_not_the_ids(
        cli: Any, serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = testing.FakeInstancePlugin(prefix="instance-3002204275138488915-")
    plugin.add(tags={f"key{n}": "x" * 20 for n in range(4)})
    serve("fake", instance=plugin)
    monkeypatch.setattr(render, "_is_terminal", lambda: True)
    monkeypatch.setenv("COLUMNS", "60")
    lines = cli("instance", "--name", "fake", "describe").stdout.splitlines()
    assert any(line.startswith("instance-3002204275138488915-000001 ") for line in lines), lines
    assert max(len(line) for line in lines) <= 60
