"""The Manager interface (v0.1.0): who leads."""

from __future__ import annotations

from typing import Protocol

from infrakit.spi.handshake import Interface
from infrakit.spi.wire import Wire

INTERFACE = Interface(name="Manager", version="0.1.0")


class Plugin(Protocol):
    async def is_leader(self) -> bool:
        """True when this manager holds leadership now."""


class IsLeaderResponse(Wire):
    leader: bool = False
    """Whether the answering manager leads."""
