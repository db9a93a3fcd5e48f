"""The plugin server: JSON-RPC 2.0 over HTTP on a unix socket, many interfaces per socket,
and on TCP with mutual TLS too when given ``listen`` (:mod:`.tcpserver`).

Plugins call :func:`run` (blocking, for entry points) or use :class:`Server` in-process.
One socket serves several interfaces and several typed objects per interface (the
``name/type`` form); ``Handshake.Implements``/``Types`` describe them. No request, however
malformed, escapes as an exception: each becomes a JSON-RPC error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import pathlib
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from infrakit import errors
from infrakit.rpc import (
    discovery,
    dispatch,
    httpserver,
    jsonrpc,
    listening,
    sockets,
    tcpserver,
)
from infrakit.rpc import flavor as flavor_rpc
from infrakit.rpc import group as group_rpc
from infrakit.rpc import instance as instance_rpc
from infrakit.rpc import manager as manager_rpc
from infrakit.rpc import metadata as metadata_rpc
from infrakit.spi import flavor, handshake, instance, manager, metadata

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024
"""Largest request body accepted, in bytes; larger ones get a JSON-RPC error."""

STOP_GRACE = 5.0
"""Seconds :meth:`Server.stop` lets calls in flight finish before it cancels them."""


class Server:
    """Serves implementation objects on ``<plugins dir>/<name>`` until stopped, and on
    ``listen`` (TCP, mutual TLS unless it has no certificate) when given; without it, on
    what the process's flags configured (:func:`.listening.configured`), if anything.

    HTTP is :class:`infrakit.rpc.httpserver.ServerProtocol` (measured leaner than aiohttp's
    server: see that module).
    """

    def __init__(self, name: str, *, instance: Any = None, flavor: Any = None,
                 group: Any = None, manager: Any = None, metadata: Any = None,
                 plugins_dir: str | pathlib.Path | None = None,
                 extra_methods: dispatch.Methods | None = None,
                 max_body: int = MAX_BODY,
                 listen: listening.Listen | None = None) -> None:
        sockets.check_name(name)
        self.name = name
        self.directory = pathlib.Path(plugins_dir) if plugins_dir else discovery.plugins_dir()
        self.max_body = max_body
        self.apis: list[handshake.Interface] = []
        self.types: dict[str, list[str]] = {}
        self.methods: dispatch.Methods = {}
        self._register(instance, flavor, group, manager, metadata)
        self.methods.update(extra_methods or {})
        self.methods.update(self._handshake_methods())
        self.path: pathlib.Path | None = None
        self._connections: set[httpserver.ServerProtocol] = set()
        self._listener: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self.listen = listen or listening.configured()
        self._tcp: tcpserver.Listener | None = None
        self._too_big = (413, _encode(jsonrpc.error(None, errors.ProtocolError(
            f"invalid request: body exceeds the limit of {self.max_body} bytes"))))

    @property
    def url(self) -> str | None:
        """The URL the TCP listener answers at, once started (``None`` without one)."""
        return self._tcp.url if self._tcp is not None else None

    def _register(self, *served: Any) -> None:
        tables = (
            (instance.INTERFACE, instance_rpc.methods),
            (flavor.INTERFACE, flavor_rpc.methods),
            (None, group_rpc.methods),
            (manager.INTERFACE, manager_rpc.methods),
            (metadata.INTERFACE, metadata_rpc.methods),
        )
        for objects, (interface, build) in zip(served, tables, strict=True):
            if objects is None:
                continue
            typed = dispatch.as_typed(objects)
            offered = [interface] if interface else group_rpc.interfaces(typed.get(""))
            for api in offered:
                self.apis.append(api)
                self.types[api.key()] = dispatch.types_entry(typed)
            self.methods.update(build(typed))

    def _handshake_methods(self) -> dispatch.Methods:
        implements = handshake.ImplementsResponse(apis=self.apis).to_wire()
        types = handshake.TypesResponse(types=self.types).to_wire()

        async def answer_implements(params: dict[str, Any]) -> Any:
            return implements

        async def answer_types(params: dict[str, Any]) -> Any:
            return types

        async def answer_listen(params: dict[str, Any]) -> Any:
            return handshake.ListenResponse(tcp=self.url).to_wire()

        # InfraKit v0.1-v0.2 asked Plugin.Implements; answering it costs nothing.
        return {"Handshake.Implements": answer_implements, "Plugin.Implements": answer_implements,
                "Handshake.Types": answer_types, "Handshake.Listen": answer_listen}

    async def start(self) -> None:
        """Bind the socket (0600 in a 0700 dir), write the pid file, start answering.

        Of two plugins starting under one name at once, exactly one binds; the other gets
        ``ConflictError`` and leaves the winner's socket and pid file alone.
        """
        sockets.ensure_dir(self.directory)
        path = sockets.socket_path(self.directory, self.name)
        bound, self._inode = _bind(path)
        try:
            self._listener = await asyncio.get_running_loop().create_unix_server(
                self._connection, sock=bound)
        except BaseException:
            bound.close()
            sockets.release(path, inode=self._inode)
            raise
        self.path = path
        log.info("plugin %s listening at %s (%s)", self.name, path,
                 ", ".join(api.key() for api in self.apis))
        if self.listen is not None:
            tcp = tcpserver.Listener(self.listen, self._connection, name=self.name)
            try:
                await tcp.start()
            except BaseException:
                await self.stop()
                raise
            self._tcp = tcp

    def _connection(self) -> httpserver.ServerProtocol:
        return httpserver.ServerProtocol(self._handle, max_body=self.max_body,
                                         too_big=self._too_big, connections=self._connections)

    async def stop(self) -> None:
        """Stop answering and remove the socket and pid file (if still ours).

        Idle connections close at once; calls in flight get :data:`STOP_GRACE` seconds to
        answer, then are cancelled. Nothing the server started is left running.
        """
        if self._tcp is not None:
            await self._tcp.close()
            self._tcp = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            for connection in list(self._connections):
                connection.close()  # idle keep-alive connections close now, busy ones after
            await _finish_calls(list(self._connections), grace=STOP_GRACE)
            lost = [connection.lost for connection in self._connections]
            for connection in list(self._connections):
                connection.abort()  # its caller sees the connection drop
            if lost:
                await asyncio.wait(lost)
        if self.path is not None:
            sockets.release(self.path, inode=self._inode)
            log.info("plugin %s stopped", self.name)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _handle(self, method: bytes, body: bytes) -> httpserver.Reply:
        if method != b"POST":
            return 405, _encode(jsonrpc.error(None, errors.ProtocolError(
                f"invalid request: use POST, not {method.decode(errors='replace')}")))
        try:
            call = jsonrpc.parse_request(body)
        except errors.InfrakitError as exc:
            return 200, _encode(jsonrpc.error(None, exc))
        answer = await self.answer(call)
        if call.notification:
            return 204, b""
        return 200, answer

    async def answer(self, call: jsonrpc.Request) -> bytes:
        """The encoded response envelope for one parsed call; never raises."""
        handler = self.methods.get(call.method)
        if handler is None:
            failure: errors.InfrakitError = errors.MethodNotFound(
                f'rpc: can\'t find method "{call.method}"', method=call.method)
            return _encode(jsonrpc.error(call.id, failure))
        try:
            return jsonrpc.encode_result(call.id, await handler(call.params))
        except errors.InfrakitError as exc:
            log.debug("%s failed: %s", call.method, exc.message)
            return _encode(jsonrpc.error(call.id, exc))
        except Exception as exc:
            log.exception("%s raised", call.method)
            failure = errors.RemoteError(f"{call.method}: {exc or type(exc).__name__}",
                                         exception=type(exc).__name__)
            return _encode(jsonrpc.error(call.id, failure))


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


async def _finish_calls(connections: list[httpserver.ServerProtocol], *,
                        grace: float) -> None:
    """Let the calls in flight answer within ``grace`` seconds; cancel the rest."""
    busy = [c.in_flight for c in connections if c.in_flight is not None]
    if not busy:
        return
    _, late = await asyncio.wait(busy, timeout=grace)
    for task in late:
        log.warning("stopping: a call still running after %gs is cancelled", grace)
        task.cancel()
    if late:
        await asyncio.wait(late)


def _bind(path: pathlib.Path) -> tuple[socket.socket, int]:
    """A listening socket at ``path`` and the socket file's inode, with our pid file
    beside it.

    Claim, bind and pid file happen under a lock on the plugins dir, so a plugin starting
    at the same moment under the same name sees our socket live and refuses; and bind never
    replaces a file, so even a peer that does not take the lock cannot be displaced. The
    pid file is written only once the path is ours.
    """
    with _dir_lock(path.parent):
        sockets.claim(path)
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listening.bind(str(path))
        except OSError as exc:
            listening.close()
            if exc.errno == errno.EADDRINUSE:
                pid = sockets.read_pid(path)
                who = f"pid {pid}" if pid else "unknown pid"
                raise errors.ConflictError(
                    f"another plugin is already listening at {path} ({who}); stop it first "
                    f"(infrakit plugin stop {path.name})", pid=pid) from None
            raise errors.UsageError(f"cannot listen at {path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        inode = os.lstat(path).st_ino
        try:
            os.chmod(path, 0o600)
            sockets.write_pid(path)
            listening.listen(100)
        except OSError as exc:
            listening.close()
            sockets.release(path, inode=inode)
            raise errors.UsageError(f"cannot listen at {path}: {exc.strerror}") from None
    listening.setblocking(False)
    return listening, inode


LOCK_WAIT = 5.0
"""Seconds a starting plugin waits for the plugins dir lock before going on without it."""


@contextlib.contextmanager
def _dir_lock(directory: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory``; each holder keeps it for microseconds.

    Never blocks for long: past :data:`LOCK_WAIT` (a holder stuck, e.g. a child forked
    without exec at the wrong moment) we go on without it, since bind alone still refuses
    to displace a live socket.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield  # an unreadable dir cannot be locked
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("plugins dir %s stays locked; starting without the lock",
                                directory)
                    break
                time.sleep(0.001)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def stopping() -> asyncio.Event:
    """An event set at SIGTERM or SIGINT: where a plugin process's serving ends. Made before
    the socket answers, so that a signal right after it is never the default's kill."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve(name: str, **kwargs: Any) -> None:
    """Serve until SIGTERM or SIGINT, then clean up the socket and pid file."""
    stop = stopping()
    async with Server(name, **kwargs):
        await stop.wait()


def run(name: str, **kwargs: Any) -> None:
    """Blocking entry point for plugin processes: a start-up failure exits with one line."""
    main(name, lambda: serve(name, **kwargs))


def main(command: str, serving: Callable[[], Awaitable[None]]) -> None:
    """Run the coroutine ``serving()`` makes (its flags parsed inside, so a bad one is caught
    too); an ``InfrakitError`` exits with one line naming ``command`` and its exit code."""
    try:
        asyncio.run(_awaited(serving))
    except errors.InfrakitError as exc:
        print(f"{command}: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


async def _awaited(serving: Callable[[], Awaitable[None]]) -> None:
    await serving()
