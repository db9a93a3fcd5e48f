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
        params = request.model_dump_json(by_alias=True).encode()
        body, request_id = client.request_body(method, params)
        raw, status = await self.rpc.post(body, method=method)
        key = (method, params, answer)
        found = _reuse(self.rpc, key, raw, request_id)
        if found is not None:
            return found
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
        _remember(self.rpc, key, raw, request_id, envelope.result)
        return envelope.result


REUSE_FROM = 16 * 1024
"""Answers at least this long are remembered per (method, params) and, when the next
answer is the same text, reused instead of parsed again: the group controller lists
thousands of unchanged members every poll, and comparing 2 MB of bytes costs 1% of
parsing them."""


def _text(raw: bytes, request_id: int) -> bytes | None:
    """The response without its id (which differs per call), if the id comes last."""
    tail = b',"id":%d}' % request_id
    return raw[:-len(tail)] if raw.endswith(tail) else None


def _reuse(rpc: client.Client, key: tuple[str, bytes, type[W]], raw: bytes,
           request_id: int) -> W | None:
    kept = rpc.answers.get(key)
    if kept is None or len(raw) < REUSE_FROM or _text(raw, request_id) != kept[0]:
        return None
    result: W = kept[1]
    # A fresh copy of each list: callers may sort or extend what they get.
    lists = {name: list(value) for name, value in result if isinstance(value, list)}
    return result.model_copy(update=lists) if lists else result


def _remember(rpc: client.Client, key: tuple[str, bytes, type[W]], raw: bytes,
              request_id: int, result: W) -> None:
    text = _text(raw, request_id) if len(raw) >= REUSE_FROM else None
    if text is None:
        rpc.answers.pop(key, None)
        return
    if len(rpc.answers) >= 32:
        rpc.answers.clear()  # callers asking ever new questions: stay bounded
    rpc.answers[key] = (text, result)
    lists = {name: list(value) for name, value in result if isinstance(value, list)}
    if lists:  # keep our own lists, out of the caller's reach
        rpc.answers[key] = (text, result.model_copy(update=lists))


def _parse(model: type[W], result: Any, *, method: str, plugin: str) -> W:
    try:
        return model.from_wire(result)
    except pydantic.ValidationError as exc:
        raise errors.ProtocolError(
            f"{plugin}: malformed result of {method}: {exc.errors(include_url=False)[:3]}",
            plugin=plugin,
        ) from None
