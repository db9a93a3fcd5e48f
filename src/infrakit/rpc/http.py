"""Lean HTTP/1.1 over unix sockets, both ends: the client pool of ``rpc.client`` and the
server protocol of ``rpc.server``; both parse bytes as they arrive (asyncio protocols, no
streams).

Why not aiohttp (measured here, small calls, 32 in flight): its server spends 55 us of CPU
per call where :class:`ServerProtocol` spends 30, and importing it adds 12 MB to every
plugin process (a third of the group plugin's memory); its client managed 2,300 calls/s
where the first version of :class:`Pool` managed 4,000, and reading with protocols instead
of streams took another 15 us off each call. bench/rpc.py: 3,500 sequential DescribeInstances
per second at 10 instances (2,700 with aiohttp's server). We need only POST, Content-Length or
chunked bodies and keep-alive, so the transport stays small.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

IDLE_SECONDS = 10.0
"""A pooled connection idle longer than this is dropped (servers time them out at 75 s)."""

_MAX_HEAD = 64 * 1024


class Closed(Exception):
    """The peer closed the connection before a full response arrived."""

    def __init__(self, *, received: bool) -> None:
        super().__init__("connection closed by the plugin")
        self.received = received


class _Connection(asyncio.Protocol):
    """One client connection: one exchange at a time, the response parsed as it arrives."""

    def __init__(self) -> None:
        self.used_at = time.monotonic()
        self.reused = False
        self.closed = False
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: tuple[int, dict[bytes, bytes]] | None = None
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
        if self._head is not None and _body_framing(self._head[1]) == "close":
            waiter.set_result((self._head[0], bytes(self._buffer), False))
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
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    raise ValueError("not an HTTP response: its head is too long")
                return None
            self._head = _parse_head(bytes(self._buffer[:end + 4]))
            del self._buffer[:end + 4]
        status, headers = self._head
        framing = _body_framing(headers)
        if framing == "close":
            return None  # the body ends when the connection does
        length = None if framing == "chunked" else int(headers[b"content-length"])
        try:
            body = _take_body(self._buffer, _Head(method=b"", keep=True, length=length),
                              max_body=_MAX_ANSWER)
        except (BadRequest, TooBig) as exc:
            raise ValueError(f"bad HTTP response body: {exc}") from None
        if body is None:
            return None
        return status, body, headers.get(b"connection", b"").lower() != b"close"


_MAX_ANSWER = 1 << 30
"""Largest response body accepted, in bytes."""


def _body_framing(headers: dict[bytes, bytes]) -> str:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        return "chunked"
    if b"content-length" in headers:
        if not headers[b"content-length"].isdigit():
            raise ValueError("not an HTTP response: bad Content-Length")
        return "length"
    return "close"


class Pool:
    """Connections to one unix socket; ``post`` is safe to call from many tasks at once.

    At most ``limit`` calls are in flight. Up to ``eager`` connections open as soon as
    calls need them; past that, a call first waits up to ``patience`` seconds for a busy
    connection to come back and opens another only if none does. A plugin that answers in
    microseconds is best served by a few connections kept busy (a thousand provisions on
    instance-file took 0.3 s over 8 connections, 0.5-0.7 s over 64: each extra connection
    in flight adds work to both processes and speeds neither); one that takes seconds per
    call still gets ``limit`` calls in flight, after a delay of ``patience`` each.
    """

    def __init__(self, path: str, *, limit: int = 64, eager: int = 8,
                 patience: float = 0.002) -> None:
        self.path = path
        self._eager = eager
        self._patience = patience
        self._idle: list[_Connection] = []
        self._opened = 0  # connections open, idle or busy
        self._waiting: collections.deque[asyncio.Future[_Connection | None]] = (
            collections.deque())
        self._slots = asyncio.Semaphore(limit)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``/``; return the status and the response body."""
        request = (b"POST / HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body)) + body
        async with self._slots:
            connection = await self._checkout()
            try:
                status, answer, keep = await connection.exchange(request)
            except Closed as exc:
                self._discard(connection)
                if not (connection.reused and not exc.received):
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
            if keep:
                connection.used_at, connection.reused = time.monotonic(), True
                self._release(connection)
            else:
                self._discard(connection)
            return status, answer

    async def _checkout(self) -> _Connection:
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
        return handed if handed is not None else await self._open()

    def _release(self, connection: _Connection) -> None:
        """A connection is free again: to the call waiting longest, else to the idle list."""
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
        try:
            _, connection = await asyncio.get_running_loop().create_unix_connection(
                _Connection, self.path)
        except BaseException:
            self._opened -= 1
            raise
        return connection

    def close(self) -> None:
        for connection in self._idle:
            self._discard(connection)
        self._idle.clear()


def _give_up(waiter: asyncio.Future[_Connection | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _parse_head(raw: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


# The server side --------------------------------------------------------------------------

KEEPALIVE_SECONDS = 75.0
"""An idle server connection is closed after this long (as aiohttp and Go's net/http do)."""

Reply = tuple[int, bytes]
"""A status and a JSON body (empty for 204)."""

Handler = Callable[[bytes, bytes], Awaitable[Reply]]
"""``handler(method, body)``: the HTTP method and the request body in, the reply out."""

_REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request", 405: b"Method Not Allowed",
            413: b"Request Entity Too Large", 431: b"Request Header Fields Too Large",
            500: b"Internal Server Error"}


class BadRequest(Exception):
    """A request that is not HTTP/1.x as we speak it: answered with 400, then closed."""


class TooBig(Exception):
    """A request body over the server's limit: answered with its 413 reply, then closed."""


@dataclass(frozen=True, slots=True)
class _Head:
    method: bytes
    keep: bool
    """Keep the connection open after the reply."""
    length: int | None
    """The Content-Length; ``None`` for a chunked body."""
    expect: bool = False
    """The client waits for ``100 Continue`` before it sends the body."""


class ServerProtocol(asyncio.Protocol):
    """One server connection: requests in order, one at a time, keep-alive."""

    def __init__(self, handler: Handler, *, max_body: int, too_big: Reply,
                 connections: set[ServerProtocol]) -> None:
        self._handler = handler
        self._max_body = max_body
        self._too_big = too_big
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._busy: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        # A request in flight runs to its end (a provision half done is worse than one
        # whose answer is lost); its reply goes nowhere.
        self._connections.discard(self)
        self._transport = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy is None:
            self._next()
        elif len(self._buffer) > self._max_body + _MAX_HEAD and self._transport is not None:
            self._transport.pause_reading()  # pipelined requests pile up: wait for the reply

    def close(self) -> None:
        """Close now if idle, else right after the reply in flight."""
        self._closing = True
        if self._busy is None and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close now, whatever is in flight."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_done(self) -> None:
        """Return once the request in flight (if any) is answered."""
        if self._busy is not None:
            await asyncio.shield(self._busy)

    def _next(self) -> None:
        """Start the next request once it is complete in the buffer."""
        try:
            if self._head is None:
                self._head = _take_head(self._buffer, max_body=self._max_body)
                if self._head is None:
                    return
                if self._head.expect and self._transport is not None:
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = _take_body(self._buffer, self._head, max_body=self._max_body)
        except TooBig:
            self._reply(self._too_big, keep=False)
            return
        except BadRequest as exc:
            self._reply((400, b'{"error": "bad request: %s"}' % str(exc).encode()), keep=False)
            return
        if body is None:
            return
        head, self._head = self._head, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._busy = asyncio.get_running_loop().create_task(
            self._serve(head.method, body, head.keep))

    async def _serve(self, method: bytes, body: bytes, keep: bool) -> None:
        try:
            reply = await self._handler(method, body)
        except Exception:  # the handler turns every failure into a reply: this is a bug
            log.exception("HTTP handler failed")
            reply = (500, b'{"error": "internal error"}')
        self._busy = None
        self._reply(reply, keep=keep and not self._closing)
        if self._transport is not None and not self._transport.is_closing():
            self._arm_idle_timer()
            self._transport.resume_reading()
            if self._buffer:
                self._next()

    def _reply(self, reply: Reply, *, keep: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        status, body = reply
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))
        if status == 204:
            body = b""
        else:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        if not keep:
            head += b"Connection: close\r\n"
        transport.write(head + b"\r\n" + body)
        if not keep:
            self._buffer.clear()
            transport.close()

    def _arm_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(
            KEEPALIVE_SECONDS, self._idle_timeout)

    def _idle_timeout(self) -> None:
        if self._busy is None and self._transport is not None:
            self._transport.close()


def _take_head(buffer: bytearray, *, max_body: int) -> _Head | None:
    """Remove a complete request head from ``buffer``; ``None`` while it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD:
            raise BadRequest("request head too large")
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[:end + 4]
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest("not an HTTP/1.x request line")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise BadRequest("malformed header line")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get(b"connection", b"").lower()
    keep = connection == b"keep-alive" if parts[2] == b"HTTP/1.0" else connection != b"close"
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        length = None
    else:
        raw_length = headers.get(b"content-length", b"0")
        if not raw_length.isdigit():
            raise BadRequest("bad Content-Length")
        length = int(raw_length)
        if length > max_body:
            raise TooBig
    expect = headers.get(b"expect", b"").lower() == b"100-continue"
    return _Head(method=parts[0], keep=keep, length=length, expect=expect)


def _take_body(buffer: bytearray, head: _Head, *, max_body: int) -> bytes | None:
    """Remove the body ``head`` announced from ``buffer``; ``None`` while it is incomplete."""
    if head.length is not None:
        if len(buffer) < head.length:
            return None
        body = bytes(buffer[:head.length])
        del buffer[:head.length]
        return body
    chunks: list[bytes] = []
    at = total = 0
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRequest("bad chunk size") from None
        total += size
        if total > max_body:
            raise TooBig
        at = line_end + 2
        if size == 0:
            trailers_end = buffer.find(b"\r\n\r\n", at - 2)
            if trailers_end < 0:
                return None
            del buffer[:trailers_end + 4]
            return b"".join(chunks)
        if len(buffer) < at + size + 2:
            return None
        chunks.append(bytes(buffer[at:at + size]))
        at += size + 2
