"""Handshake: which interfaces (and versions) a plugin socket serves, and its typed objects."""

from __future__ import annotations

from pydantic import Field

from infrakit import errors
from infrakit.spi.wire import Wire


class Interface(Wire):
    """One interface at one version, e.g. Instance/0.5.0."""

    name: str
    """Interface name: Instance, Flavor, Group, Manager, Metadata, Event."""
    version: str
    """Semantic version of the interface."""

    def key(self) -> str:
        """``Name/Version``, the key of ``Handshake.Types``."""
        return f"{self.name}/{self.version}"


DEFAULT_TYPE = "."
"""How ``Handshake.Types`` names the default object of an interface."""


class ImplementsResponse(Wire):
    apis: list[Interface] = Field(default_factory=list)
    """Every interface the socket serves."""


class TypesResponse(Wire):
    types: dict[str, list[str]] = Field(default_factory=dict)
    """``Name/Version`` → the sub-types served (``"."`` for the default object)."""


class ListenResponse(Wire):
    """``Handshake.Listen`` (ours; v0.5 has no TCP listeners): where else the plugin answers."""

    tcp: str | None = None
    """The URL of its TCP listener (``https://`` with mutual TLS), ``None`` without one."""


def choose(offered: list[Interface], wanted: tuple[Interface, ...], *,
           plugin: str) -> Interface:
    """The first of ``wanted`` that ``plugin`` offers, else ``HandshakeError`` naming the plugin,
    what was wanted and what it offers."""
    for interface in wanted:
        if interface in offered:
            return interface
    raise errors.HandshakeError(
        f"plugin {plugin!r} does not implement {' or '.join(i.key() for i in wanted)}; "
        f"it offers {', '.join(i.key() for i in offered) or 'nothing'}", plugin=plugin)
