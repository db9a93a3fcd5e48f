"""The async JSON-RPC client: one connection pool per plugin (its unix socket, or its URL
over TCP with mutual TLS, :mod:`.address`), per-call timeouts, and the cached handshake
check. Typed proxies (``rpc.instance.Client`` …) sit on top.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import pathlib
import ssl
from typing import Any

from infrakit import errors
from infrakit.rpc import address, jsonrpc, pool, tls
from infrakit.spi import handshake

DEFAULT_TIMEOUT = 30.0
"""Seconds a call may take before it fails with ``CallTimeout``."""

_ids = itertools.count(1)


class Client:
    """Calls methods on the plugin listening at ``path`` (a socket path, or a URL: then
    with the TLS ``settings`` given, else the process's); safe to share between tasks."""

    def __init__(self, path: str | pathlib.Path, *, name: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, settings: tls.Settings | None = None) -> None:
        self.path = str(path)
        self.address = address.parse(self.path) if address.is_url(self.path) else None
        self.name = name or (_label(self.address) if self.address else pathlib.Path(path).name)
        self.timeout = timeout
        self._settings = settings
        self._pool: pool.Pool | None = None
        self._apis: list[handshake.Interface] | None = None
        self._apis_lock = asyncio.Lock()
        self.answers: dict[tuple[str, bytes, type[Any]], tuple[bytes, Any]] = {}
        """Large answers kept by the typed proxies for reuse (see ``rpc.proxy``)."""

    def _open(self) -> pool.Pool:
        if self._pool is None:
            where = self.address
            if where is None:
                self._pool = pool.Pool(self.path)
            else:
                context = tls.context_for(where, self._settings)  # UsageError if none fits
                self._pool = pool.Pool(self.path, tcp=(where.host, where.port), ssl=context)
        return self._pool

    async def call(self, method: str, params: dict[str, Any], *,
                   timeout: float | None = None) -> Any:
        """Call ``method``; return its result or raise the remote error as our own type."""
        raw, status = await self.call_raw(method, params, timeout=timeout)
        return decode(raw, status=status, plugin=self.name)

    async def call_raw(self, method: str, params: dict[str, Any], *,
                       timeout: float | None = None) -> tuple[bytes, int]:
        """Call ``method``; return the undecoded response body and the HTTP status."""
        body = json.dumps(jsonrpc.request(method, params, next(_ids))).encode()
        return await self.post(body, method=method, timeout=timeout)

    async def post(self, body: bytes, *, method: str,
                   timeout: float | None = None) -> tuple[bytes, int]:
        """Send an encoded request (see :func:`request_body`); return the undecoded response
        body and the HTTP status. ``method`` names the call in errors."""
        seconds = timeout or self.timeout
        try:
            async with asyncio.timeout(seconds):
                status, raw = await self._open().post(body)
        except TimeoutError:
            raise errors.CallTimeout(
                f"{self.name}: {method} did not answer within {seconds:g}s", plugin=self.name,
            ) from None
        except (OSError, pool.Closed) as exc:
            raise errors.Unavailable(
                f"{self.name}: cannot reach plugin at {self.path}: {_reason(exc)}",
                plugin=self.name,
            ) from None
        except ValueError as exc:
            raise errors.ProtocolError(f"{self.name}: {exc}", plugin=self.name) from None
        return raw, status

    async def implements(self) -> list[handshake.Interface]:
        """The interfaces the plugin serves, asked once and cached."""
        async with self._apis_lock:
            if self._apis is None:
                result = await self.call("Handshake.Implements", {})
                self._apis = handshake.ImplementsResponse.from_wire(result).apis
        return self._apis

    async def require(self, *wanted: handshake.Interface) -> handshake.Interface:
        """The first of ``wanted`` that the plugin implements, else ``HandshakeError``."""
        offered = await self.implements()
        return handshake.choose(offered, wanted, plugin=self.name)

    async def close(self) -> None:
        """Close the connections (a call in flight keeps its own until it ends); a later
        call opens a fresh pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def request_body(method: str, params: bytes) -> tuple[bytes, int]:
    """A request envelope around ``params`` (already JSON), and its id."""
    request_id = next(_ids)
    return (b'{"jsonrpc":"2.0","method":%s,"params":%s,"id":%d}'
            % (json.dumps(method).encode(), params, request_id), request_id)


def _label(where: address.Address) -> str:
    """A URL plugin's name in messages: its name when the URL gives one."""
    return where.name or where.lookup


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    if isinstance(cause, ssl.SSLError):
        return f"TLS: {tls.explain(cause)}"
    return getattr(cause, "strerror", None) or str(cause) or type(cause).__name__


def decode(raw: bytes, *, status: int, plugin: str) -> Any:
    """The result in a response body, or the remote error raised as our own type."""
    try:
        message = json.loads(raw) if raw else None
    except ValueError:
        raise errors.ProtocolError(
            f"{plugin}: answer is not JSON (HTTP {status}): {raw[:200]!r}", plugin=plugin
        ) from None
    if message is None:
        raise errors.ProtocolError(f"{plugin}: empty answer (HTTP {status})", plugin=plugin)
    return jsonrpc.unwrap_response(message)
