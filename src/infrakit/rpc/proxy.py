"""The base of typed proxies: a remote plugin that looks exactly like a local one."""

from __future__ import annotations

import functools
from typing import Any, Generic, TypeVar

import pydantic

from infrakit import errors
from infrakit.rpc import client
from infrakit.spi import handshake
from infrakit.spi.wire import Wire

W = TypeVar("W", bound=Wire)


class _Failure(pydantic.BaseModel):
    code: int = errors.SERVER_ERROR
    message: str = ""
    data: Any = None


class _Envelope(pydantic.BaseModel, Generic[W]):
    """A response envelope, parsed straight from bytes: the fast path for big results."""

    result: W | None = None
    error: _Failure | None = None


@functools.cache
def _envelope(answer: type[W]) -> type[_Envelope[W]]:
    return _Envelope[answer]  # type: ignore[valid-type]


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
        raw, status = await self.rpc.call_raw(method, request.to_wire())
        try:
            envelope: _Envelope[W] = _envelope(answer).model_validate_json(raw)
        except pydantic.ValidationError:
            # Not the shape we expect: take the slow path, which names what is wrong.
            result = client.decode(raw, status=status, plugin=self.rpc.name)
            return _parse(answer, result, method=method, plugin=self.rpc.name)
        if envelope.error is not None:
            failure = envelope.error
            raise errors.from_wire(failure.code, failure.message, failure.data)
        if envelope.result is None:
            return _parse(answer, None, method=method, plugin=self.rpc.name)
        return envelope.result


def _parse(model: type[W], result: Any, *, method: str, plugin: str) -> W:
    try:
        return model.from_wire(result)
    except pydantic.ValidationError as exc:
        raise errors.ProtocolError(
            f"{plugin}: malformed result of {method}: {exc.errors(include_url=False)[:3]}",
            plugin=plugin,
        ) from None
