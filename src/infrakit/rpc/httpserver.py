"""The server side of our HTTP/1.1: one :class:`ServerProtocol` per accepted connection,
requests served in order, one at a time, with keep-alive. ``rpc.server.Server`` builds one
per connection and hands it the JSON-RPC handler; framing is ``rpc.framing``.

Why not aiohttp (measured here, small calls, 32 in flight): its server spends 55 us of CPU
per call where :class:`ServerProtocol` spends 30, and importing it adds 12 MB to every
plugin process (a third of the group plugin's memory). bench/rpc.py: 3,500 sequential
DescribeInstances per second at 10 instances (2,700 with aiohttp's server).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from infrakit.rpc import framing

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 75.0
"""An idle server connection is closed after this long (as aiohttp and Go's net/http do)."""

Reply = tuple[int, bytes]
"""A status and a JSON body (empty for 204)."""

Handler = Callable[[bytes, bytes], Awaitable[Reply]]
"""``handler(method, body)``: the HTTP method and the request body in, the reply out."""


class ServerProtocol(asyncio.Protocol):
    """One server connection: requests in order, one at a time, keep-alive.

    A client that shuts its write side after its requests (``shutdown(SHUT_WR)``) still gets
    every complete one answered; the connection closes after the last answer.
    """

    def __init__(self, handler: Handler, *, max_body: int, too_big: Reply,
                 connections: set[ServerProtocol]) -> None:
        self._handler = handler
        self._max_body = max_body
        self._too_big = too_big
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._head: framing.Head | None = None
        self._busy: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._eof = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the connection is closed."""

    @property
    def in_flight(self) -> asyncio.Task[None] | None:
        """The task serving the current request, if any."""
        return self._busy

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
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy is None:
            self._next()
        elif len(self._buffer) > self._max_body + framing.MAX_HEAD and self._transport:
            self._transport.pause_reading()  # pipelined requests pile up: wait for the reply

    def eof_received(self) -> bool:
        """The client will send no more: keep the connection to answer the request in
        flight (and those complete behind it), else let the transport close."""
        self._eof = True
        return self._busy is not None

    def close(self) -> None:
        """Close now if idle, else right after the reply in flight."""
        self._closing = True
        if self._busy is None and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close now, whatever is in flight."""
        if self._transport is not None:
            self._transport.abort()

    def _next(self) -> None:
        """Start the next request once it is complete in the buffer."""
        try:
            if self._head is None:
                self._head = framing.take_head(self._buffer, max_body=self._max_body)
                if self._head is None:
                    return
                if self._head.expect and self._transport is not None:
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = framing.take_body(self._buffer, length=self._head.length,
                                     max_body=self._max_body)
        except framing.TooBig:
            self._reply(self._too_big, keep=False)
            return
        except framing.BadRequest as exc:
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
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.resume_reading()
        if self._buffer:
            self._next()
        if self._busy is not None:
            return  # a pipelined request is being served
        if self._eof:
            transport.close()  # the client sends no more and has all its answers
            return
        self._arm_idle_timer()

    def _reply(self, reply: Reply, *, keep: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        status, body = reply
        transport.write(framing.encode_reply(status, body, keep=keep))
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
