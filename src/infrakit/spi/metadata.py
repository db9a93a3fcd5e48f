"""The Metadata interface (v0.1.0): a read-only tree of values a plugin exposes."""

from __future__ import annotations

import builtins
from typing import Any, Protocol

from infrakit.spi.handshake import Interface
from infrakit.spi.wire import Wire

INTERFACE = Interface(name="Metadata", version="0.1.0")


def split_path(path: str) -> list[str]:
    """``"a/b/"`` → ``["a", "b"]``: the wire carries paths as slash-joined strings."""
    return [part for part in path.split("/") if part]


class Plugin(Protocol):
    async def list(self, path: builtins.list[str]) -> builtins.list[str]:
        """Child names under ``path`` (empty when it is a leaf or absent)."""

    async def get(self, path: builtins.list[str]) -> Any:
        """The value at ``path`` (``None`` when absent)."""


class PathRequest(Wire):
    path: str = ""
    """Slash-separated path."""


class ListResponse(Wire):
    nodes: list[str] | None = None
    """Child names."""


class GetResponse(Wire):
    value: Any = None
    """The value."""
