"""Client connections to one plugin (its unix socket, or TCP with mutual TLS): HTTP/1.1
keep-alive, one exchange per connection at a time, the response parsed as it arrives (an
asyncio protocol, no streams).

``rpc.client.Client`` holds one :class:`Pool` per plugin. Why not aiohttp's client
(measured, small calls, 32 in flight): it managed 2,300 calls/s where the first version of
:class:`Pool` managed 4,000, and reading with protocols instead of streams took another
15 us off each call. Framing is ``rpc.framing``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time

from infrakit.rpc import framing, tls

IDLE_SECONDS = 10.0
"""A pooled connection idle longer than this is dropped (servers time them out at 75 s)."""


class Closed(Exception):
    """The connection (or the whole pool) closed before a full response arrived."""

    def __init__(self, reason: str = "connection closed by the plugin", *,
                 received: bool) -> None:
        super().__init__(reason)
        self.received = received


class _Connection(asyncio.Protocol):
    """One client connection: one exchange at a time, the response parsed as it arrives."""

    def __init__(self) -> None:
        self.used_at = time.monotonic()
        self.reused = False
        self.closed = False
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: framing.ResponseHead | None = None
        self._received = False
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._head is not None and self._head.framing == "close":
            waiter.set_result((self._head.status, bytes(self._buffer), False))
        elif isinstance(exc, ssl.SSLError):
            # TLS 1.3: a server refuses our certificate after our side of the handshake
            # is done, so its alert arrives here, in place of the answer.
            waiter.set_exception(Closed(f"TLS: {tls.explain(exc)}", received=self._received))
        else:
            waiter.set_exception(Closed(received=self._received))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._received = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = self._parse()
        except ValueError as exc:
            waiter.set_exception(exc)
            return
        if answer is not None:
            waiter.set_result(answer)

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request``; return the status, the body and whether to keep the connection."""
        if self._transport is None or self.closed:
            raise Closed(received=False)
        self._buffer.clear()
        self._head, self._received = None, False
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _parse(self) -> tuple[int, bytes, bool] | None:
        if self._head is None:
            self._head = framing.take_response_head(self._buffer)
            if self._head is None:
                return None
        body = framing.take_response_body(self._buffer, self._head)
        if body is None:
            return None
        return self._head.status, body, self._head.keep


class Pool:
    """Connections to one plugin; ``post`` is safe to call from many tasks at once.

    ``Pool(path)`` for a unix socket; ``Pool(url, tcp=(host, port), ssl=context)`` for TCP
    (mutual TLS with ``ssl``, plain without).

    At most ``limit`` calls are in flight. Up to ``eager`` connections open as soon as
    calls need them; past that, a call first waits up to ``patience`` seconds for a busy
    connection to come back and opens another only if none does. A plugin that answers in
    microseconds is best served by a few connections kept busy (a thousand provisions on
    instance-file took 0.3 s over 8 connections, 0.5-0.7 s over 64: each extra connection
    in flight adds work to both processes and speeds neither); one that takes seconds per
    call still gets ``limit`` calls in flight, after a delay of ``patience`` each.

    :meth:`close` closes the idle connections at once and each busy one as its call ends;
    calls made after it raise :class:`Closed`.
    """

    def __init__(self, path: str, *, limit: int = 64, eager: int = 8,
                 patience: float = 0.002, tcp: tuple[str, int] | None = None,
                 ssl: ssl.SSLContext | None = None) -> None:
        self.path = path
        self._tcp = tcp
        self._ssl = ssl
        self._eager = eager
        self._patience = patience
        self._idle: list[_Connection] = []
        self._opened = 0  # connections open, idle or busy
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = (
            collections.deque())
        self._slots = asyncio.Semaphore(limit)
        self._closed = False

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``/``; return the status and the response body."""
        request = framing.encode_request(body)
        async with self._slots:
            connection = await self._checkout()
            try:
                status, answer, keep = await connection.exchange(request)
            except Closed as exc:
                self._discard(connection)
                if not (connection.reused and not exc.received) or self._closed:
                    raise
                # The server dropped an idle connection before reading our request: retry
                # once on a fresh one (nothing reached the plugin, so nothing runs twice).
                connection = await self._open()
                try:
                    status, answer, keep = await connection.exchange(request)
                except BaseException:
                    self._discard(connection)
                    raise
            except BaseException:
                self._discard(connection)
                raise
            if keep and not self._closed:
                connection.used_at, connection.reused = time.monotonic(), True
                self._release(connection)
            else:
                self._discard(connection)
            return status, answer

    def close(self) -> None:
        """Close idle connections now and busy ones when their call ends; refuse new calls."""
        self._closed = True
        for connection in self._idle:
            self._discard(connection)
        self._idle.clear()
        while self._waiting:
            _give_up(self._waiting.popleft())  # they wake, see the pool closed, and raise

    def _check_open(self) -> None:
        if self._closed:
            raise Closed(f"connection pool for {self.path} is closed", received=False)

    async def _checkout(self) -> _Connection:
        self._check_open()  # checked again: the pool may have closed while we queued
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.used_at < IDLE_SECONDS and not connection.closed:
                return connection
            self._discard(connection)
        if self._opened < self._eager:
            return await self._open()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiting.append(waiter)
        timer = loop.call_later(self._patience, _give_up, waiter)
        try:
            handed = await waiter
        except asyncio.CancelledError:
            late = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if late is not None:
                self._release(late)  # handed over as we were cancelled: pass it on
            raise
        finally:
            timer.cancel()
        if handed is not None:
            return handed
        self._check_open()
        return await self._open()

    def _release(self, connection: _Connection) -> None:
        """A connection is free again: to the call waiting longest, else to the idle list."""
        if self._closed:
            self._discard(connection)
            return
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        connection.close()
        self._opened -= 1

    async def _open(self) -> _Connection:
        self._opened += 1
        loop = asyncio.get_running_loop()
        try:
            if self._tcp is None:
                _, connection = await loop.create_unix_connection(_Connection, self.path)
            else:
                host, port = self._tcp
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=self._ssl,
                    server_hostname=host if self._ssl else None,
                    ssl_handshake_timeout=tls.HANDSHAKE_TIMEOUT if self._ssl else None)
        except BaseException:
            self._opened -= 1
            raise
        if self._closed:  # closed while we connected: nobody will ever release this one
            self._discard(connection)
            self._check_open()
        return connection


def _give_up(waiter: asyncio.Future[_Connection | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
