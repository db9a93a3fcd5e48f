"""Fixtures of the instance plugin tests: instance-file on a directory of the test's own."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from infrakit.plugins.instance import file


@pytest.fixture(params=[True, False], ids=["inotify", "scan"])
def watch(request: pytest.FixtureRequest) -> bool:
    """How :func:`plugin` learns of changes: inotify, or a scan at every call (a module that
    needs one mode overrides this fixture)."""
    mode: bool = request.param
    return mode


@pytest.fixture
def plugin(tmp_path: pathlib.Path, watch: bool) -> Iterator[file.Plugin]:
    """instance-file on ``<tmp_path>/instances``, closed at the end."""
    subject = file.Plugin(tmp_path / "instances", watch=watch)
    try:
        yield subject
    finally:
        subject.close()
