"""A plugin's TCP listener: mutual TLS by default, plain TCP only when asked for.

:class:`infrakit.rpc.server.Server` starts one beside its unix socket when it is given a
:class:`.listening.Listen`. Each accepted connection gets the same HTTP protocol as the
unix socket, once its TLS handshake has succeeded.

We accept and handshake ourselves (:mod:`.tlsbridge`) instead of ``create_server(ssl=...)``,
because asyncio's server drops a failed handshake silently, without a log line and
without the TLS alert that tells the client why. Here each failure is one WARNING line
naming the peer and the cause (``certificate verify failed: certificate has expired``), the
client gets the alert, and the listener goes on. A first byte that is not a TLS record
(plain HTTP sent to this port) gets an HTTP 400 whose JSON-RPC error says to use
``https://``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Callable

from infrakit import errors
from infrakit.rpc import listening, tls, tlsbridge

log = logging.getLogger(__name__)

TLS_RECORD = 0x16
"""The first byte of a TLS handshake record (a ClientHello)."""
PLAIN_REFUSAL = json.dumps({
    "jsonrpc": "2.0", "id": None,
    "error": {"code": errors.INVALID_REQUEST, "data": {"kind": "protocol"},
              "message": "this port speaks mutual TLS: use https:// with a client "
                         "certificate (infrakit pki issue)"}}).encode()


class Listener:
    """``Listener(spec, factory, name=...)``: serve ``factory()`` protocols on TCP."""

    def __init__(self, spec: listening.Listen, factory: Callable[[], asyncio.Protocol], *,
                 name: str) -> None:
        self.spec = spec
        self.name = name
        self._factory = factory
        self._context: ssl.SSLContext | None = None
        self._sock: socket.socket | None = None
        self._plain: asyncio.AbstractServer | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.port = spec.port

    @property
    def url(self) -> str:
        """How clients reach this listener (the port actually bound)."""
        return listening.Listen(self.spec.host, self.port, self.spec.files).url

    async def start(self) -> None:
        """Bind and listen; a certificate that cannot be loaded or a port in use fails here."""
        if self.spec.files is not None:
            self._context = tls.server_context(self.spec.files)  # UsageError if unusable
        self._sock = _bind(self.spec)
        self.port = self._sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        if self._context is None:
            log.warning("plugin %s listens on PLAIN TCP at %s (--insecure): anyone who can "
                        "reach this port can drive the plugin; use mutual TLS (--tls-dir)",
                        self.name, self.url)
            self._plain = await loop.create_server(self._factory, sock=self._sock)
            return
        self._accepting = loop.create_task(self._accept(), name=f"accept:{self.name}")
        log.info("plugin %s listening at %s (mutual TLS, CA %s)", self.name, self.url,
                 self.spec.files.ca if self.spec.files else "")

    async def close(self) -> None:
        """Stop accepting; handshakes in progress are abandoned."""
        if self._plain is not None:
            self._plain.close()
            self._plain = None
        tasks = [t for t in (self._accepting, *self._pending) if t is not None]
        self._accepting = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(self._sock)
            except OSError as exc:  # out of descriptors: wait, never die of it
                log.warning("plugin %s: accept on %s failed: %s", self.name, self.url,
                            exc.strerror or exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            task = loop.create_task(self._secure(conn, _who(peer)))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _secure(self, conn: socket.socket, who: str) -> None:
        """The TLS handshake on one accepted connection, then the HTTP protocol."""
        loop = asyncio.get_running_loop()
        assert self._context is not None
        try:
            async with asyncio.timeout(tls.HANDSHAKE_TIMEOUT):
                first = await _peek(loop, conn)
                if first[:1] != bytes([TLS_RECORD]):
                    await self._refuse(loop, conn, first, who=who)
                    return
                session = await tlsbridge.handshake(loop, conn, self._context)
            inner = self._factory
            await loop.connect_accepted_socket(lambda: tlsbridge.Bridge(session, inner()),
                                               conn)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.warning("plugin %s: TLS handshake with %s failed: %s", self.name, who,
                        _server_side(exc))
            await _close_gently(loop, conn)

    async def _refuse(self, loop: asyncio.AbstractEventLoop, conn: socket.socket,
                      first: bytes, *, who: str) -> None:
        """Not TLS: nothing at all (a port probe), or plain HTTP (answered with a 400)."""
        if not first:
            conn.close()
            return
        http = first[:1].isalpha()
        log.warning("plugin %s: %s sent plain %s to the TLS port %s; refused", self.name,
                    who, "HTTP" if http else "data", self.url)
        await _close_gently(loop, conn, answer=PLAIN_HTTP if http else b"")


def _bind(spec: listening.Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((spec.host, spec.port))
        sock.listen(100)
    except OSError as exc:
        sock.close()
        raise errors.UsageError(f"--listen {spec.host}:{spec.port}: cannot listen: "
                                f"{exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def _peek(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    """The first bytes the peer sent, left unread for the TLS layer."""
    while True:
        try:
            return conn.recv(8, socket.MSG_PEEK)
        except BlockingIOError:
            pass
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _settle, ready)
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


PLAIN_HTTP = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(PLAIN_REFUSAL)
              + PLAIN_REFUSAL)


def _server_side(exc: BaseException) -> str:
    """Why a handshake failed, as the listener's log says it."""
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        # asyncio's TLS client hangs up without an alert when it refuses our certificate.
        return ("the client hung up during the handshake (did it refuse our certificate, "
                "e.g. signed by a CA it does not trust?)")
    return tls.explain(exc)


async def _close_gently(loop: asyncio.AbstractEventLoop, conn: socket.socket, *,
                        answer: bytes = b"") -> None:
    """Send ``answer`` (an alert went out already), then close after reading what the
    peer still sends, so that it gets our last words rather than a reset."""
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await loop.sock_recv(conn, 65536)
        if answer:
            await loop.sock_sendall(conn, answer)
        conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while await loop.sock_recv(conn, 65536):
                    pass
    except OSError:
        pass
    finally:
        conn.close()


def _who(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)
