"""What answers in the plugins dir: one row per plugin and interface, for ``infrakit plugin ls``.

The CLI prints the rows :func:`rows` returns; a socket nobody answers on is a row with its error.
"""

from __future__ import annotations

import dataclasses
import pathlib

from infrakit import errors
from infrakit.rpc import discovery, sync
from infrakit.spi import handshake


@dataclasses.dataclass(frozen=True)
class Row:
    """One (plugin, interface) row of ``plugin ls``; ``error`` when the plugin did not answer."""

    name: str
    listen: pathlib.Path
    interface: str | None = None
    error: str | None = None
    tcp: str | None = None
    """The URL of the plugin's TCP listener, if it has one."""


def rows(directory: pathlib.Path | None = None, *, timeout: float = 2.0) -> list[Row]:
    """Every socket in the plugins dir with each interface (and sub-type) it serves."""
    found: list[Row] = []
    for name, path in discovery.list_sockets(directory).items():
        client = sync.Client(path, name=name, timeout=timeout)
        try:
            types = _types(client)
            tcp = _tcp(client)
        except errors.InfrakitError as exc:
            found.append(Row(name=name, listen=path, error=exc.message))
            continue
        for key, names in sorted(types.items()):
            for type_name in names:
                shown = name if type_name == handshake.DEFAULT_TYPE else f"{name}/{type_name}"
                found.append(Row(name=shown, listen=path, interface=key, tcp=tcp))
    return found


def _types(client: sync.Client) -> dict[str, list[str]]:
    """``Handshake.Types``; a peer without it gets one default object per interface."""
    try:
        return handshake.TypesResponse.from_wire(client.call("Handshake.Types", {})).types
    except errors.MethodNotFound:
        return {api.key(): [handshake.DEFAULT_TYPE] for api in client.implements()}


def _tcp(client: sync.Client) -> str | None:
    """``Handshake.Listen``'s URL; a peer without it (v0.5, or a plugin in another language
    that answers it with some error) is listed on its socket only."""
    try:
        return handshake.ListenResponse.from_wire(client.call("Handshake.Listen", {})).tcp
    except errors.InfrakitError:
        return None  # it answered Handshake.Types just now: it is listed, without a URL
