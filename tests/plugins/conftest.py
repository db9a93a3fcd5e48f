"""Fixtures shared by the plugin tests."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Stand in for ``infrakit.rpc.server`` and record what each ``run(argv)`` asked it to serve."""
    calls: list[tuple[str, dict[str, Any]]] = []
    fake = types.ModuleType("infrakit.rpc.server")
    fake.run = lambda name, **kwargs: calls.append((name, kwargs))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "infrakit.rpc.server", fake)
    rpc = sys.modules.get("infrakit.rpc")
    if rpc is not None:
        monkeypatch.setattr(rpc, "server", fake, raising=False)
    return calls
