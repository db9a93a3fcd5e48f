"""The server side of TLS, done over memory BIOs so that a refused peer is told why.

asyncio's own TLS server drops the connection when a handshake fails without sending the
TLS alert, so a client whose certificate was refused (expired, from another CA, none at
all) would see only a closed connection. Here :func:`handshake` runs OpenSSL's handshake
over ``ssl.MemoryBIO``; on failure the alert goes out before the connection closes, and
the client can say "the peer refused our certificate: it has expired". Once it succeeds,
:class:`Bridge` carries the session on a plain transport and hands decrypted bytes to the
HTTP protocol (:mod:`.tcpserver` sets this up for each connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any

READ_SIZE = 256 * 1024


class Session:
    """One connection's TLS state: the SSL object and its two memory BIOs."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    def pending(self) -> bytes:
        """What OpenSSL wants sent (handshake messages, alerts, records)."""
        return self.outgoing.read() if self.outgoing.pending else b""


async def handshake(loop: asyncio.AbstractEventLoop, conn: socket.socket,
                    context: ssl.SSLContext) -> Session:
    """The server's handshake on ``conn``; raises the ``ssl.SSLError`` (after sending the
    alert) or the ``OSError`` that ended it."""
    session = Session(context)
    while True:
        try:
            session.tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            await _send(loop, conn, session.pending())
            data = await loop.sock_recv(conn, READ_SIZE)
            if not data:
                raise ConnectionResetError("the client closed the connection") from None
            session.incoming.write(data)
        except ssl.SSLError:
            with contextlib.suppress(OSError):  # the alert: the client learns why
                await _send(loop, conn, session.pending())
            raise
    await _send(loop, conn, session.pending())
    return session


async def _send(loop: asyncio.AbstractEventLoop, conn: socket.socket, data: bytes) -> None:
    if data:
        await loop.sock_sendall(conn, data)


class Bridge(asyncio.Protocol):
    """A plain transport below, ``inner`` above seeing cleartext through :class:`Secured`."""

    def __init__(self, session: Session, inner: asyncio.Protocol) -> None:
        self.session = session
        self.inner = inner
        self.below: asyncio.Transport | None = None
        self.above: Secured | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.below = transport
        self.above = Secured(self)
        self.inner.connection_made(self.above)
        self._deliver()  # the client's first request may have come with its Finished

    def data_received(self, data: bytes) -> None:
        self.session.incoming.write(data)
        self._deliver()

    def eof_received(self) -> bool | None:
        self.session.incoming.write_eof()
        self._deliver()
        return self.inner.eof_received() if hasattr(self.inner, "eof_received") else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _deliver(self) -> None:
        """Pass every complete record's cleartext up; send what OpenSSL has to say."""
        chunks = []
        try:
            while True:
                chunk = self.session.tls.read(READ_SIZE)
                if not chunk:
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            self.flush()
            if self.below is not None:
                self.below.close()
            return
        self.flush()
        if chunks:
            self.inner.data_received(b"".join(chunks))

    def flush(self) -> None:
        data = self.session.pending()
        if data and self.below is not None and not self.below.is_closing():
            self.below.write(data)


class Secured(asyncio.Transport):
    """The transport the HTTP protocol writes cleartext to."""

    def __init__(self, bridge: Bridge) -> None:
        super().__init__()
        self._bridge = bridge

    @property
    def _below(self) -> asyncio.Transport:
        assert self._bridge.below is not None
        return self._bridge.below

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._below.is_closing():
            return
        self._bridge.session.tls.write(bytes(data))
        self._bridge.flush()

    def close(self) -> None:
        if self._below.is_closing():
            return
        with contextlib.suppress(ssl.SSLError):
            self._bridge.session.tls.unwrap()  # close_notify; the peer's answer is not awaited
        self._bridge.flush()
        self._below.close()

    def abort(self) -> None:
        self._below.abort()

    def is_closing(self) -> bool:
        return self._below.is_closing()

    def pause_reading(self) -> None:
        self._below.pause_reading()

    def resume_reading(self) -> None:
        self._below.resume_reading()

    def is_reading(self) -> bool:
        return self._below.is_reading()

    def get_write_buffer_size(self) -> int:
        return self._below.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peercert":
            return self._bridge.session.tls.getpeercert()
        if name == "ssl_object":
            return self._bridge.session.tls
        return self._below.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._bridge.inner = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._bridge.inner
