"""Fixtures shared by every test directory."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from infrakit.rpc import discovery


@pytest.fixture
def plugins_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A short private plugins dir (unix socket paths must stay under 108 bytes)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ik-"))
    directory.chmod(0o700)
    monkeypatch.setenv("INFRAKIT_PLUGINS_DIR", str(directory))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def plugins(plugins_dir: pathlib.Path) -> AsyncIterator[discovery.Plugins]:
    """Typed RPC clients for the plugins in ``plugins_dir``, closed at the end."""
    found = discovery.Plugins(plugins_dir)
    try:
        yield found
    finally:
        await found.close()
