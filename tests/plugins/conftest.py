"""Fixtures shared by the plugin tests."""

from __future__ import annotations

import signal
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from infrakit import processes
from infrakit.plugins.instance import process


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Stand in for ``infrakit.rpc.server`` and record what each ``run(argv)`` asked it to serve."""
    calls: list[tuple[str, dict[str, Any]]] = []
    server = types.ModuleType("infrakit.rpc.server")
    server.run = lambda name, **kwargs: calls.append((name, kwargs))  # type: ignore[attr-defined]
    discovery = types.ModuleType("infrakit.rpc.discovery")
    discovery.Plugins = _Plugins  # type: ignore[attr-defined]
    rpc = sys.modules.get("infrakit.rpc")
    for name, fake in (("server", server), ("discovery", discovery)):
        monkeypatch.setitem(sys.modules, f"infrakit.rpc.{name}", fake)
        if rpc is not None:
            monkeypatch.setattr(rpc, name, fake, raising=False)
    return calls


class _Plugins:
    """Stands in for ``infrakit.rpc.discovery.Plugins``: resolves every name to its own name."""

    def flavor(self, name: str) -> str:
        return f"flavor:{name}"


class _Spawned(dict[int, Any]):
    """``process._CHILDREN`` that also remembers every child ever put in it, with its start."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int | None] = {}

    def __setitem__(self, pid: int, child: Any) -> None:
        info = processes.stat(pid)
        self.starts[pid] = None if info is None else info.start_time
        super().__setitem__(pid, child)


@pytest.fixture
def cleanup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Kill the session of every child process the plugin starts during the test."""
    spawned = _Spawned()
    monkeypatch.setattr(process, "_CHILDREN", spawned)
    try:
        yield
    finally:
        for pid, start in spawned.starts.items():
            info = processes.stat(pid)
            if info is None or info.start_time == start:  # not a recycled pid
                processes.signal_session(pid, signal.SIGKILL)
        for child in list(spawned.values()):
            child.wait()
