"""The base of typed proxies: a remote plugin that looks exactly like a local one."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from infrakit import errors
from infrakit.rpc import client
from infrakit.spi import handshake
from infrakit.spi.wire import Wire

W = TypeVar("W", bound=Wire)


class Proxy:
    """Calls one interface of one (typed) object behind a socket, after checking the handshake."""

    interfaces: tuple[handshake.Interface, ...] = ()
    """Versions of the interface this proxy can speak, preferred first."""

    def __init__(self, rpc: client.Client, type_name: str = "") -> None:
        self.rpc = rpc
        self.type_name = type_name
        self.version: handshake.Interface | None = None

    async def call(self, method: str, request: Wire, answer: type[W]) -> W:
        if self.version is None:
            self.version = await self.rpc.require(*self.interfaces)
        result = await self.rpc.call(method, request.to_wire())
        return _parse(answer, result, method=method, plugin=self.rpc.name)


def _parse(model: type[W], result: Any, *, method: str, plugin: str) -> W:
    try:
        return model.from_wire(result)
    except pydantic.ValidationError as exc:
        raise errors.ProtocolError(
            f"{plugin}: malformed result of {method}: {exc.errors(include_url=False)[:3]}",
            plugin=plugin,
        ) from None
