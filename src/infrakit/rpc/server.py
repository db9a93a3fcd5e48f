"""The plugin server: JSON-RPC 2.0 over HTTP on a unix socket, many interfaces per socket.

Plugins call :func:`run` (blocking, for entry points) or use :class:`Server` in-process.
One socket serves several interfaces and several typed objects per interface (the
``name/type`` form); ``Handshake.Implements``/``Types`` describe them. No request, however
malformed, escapes as an exception: each becomes a JSON-RPC error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import signal
import sys
from typing import Any

from infrakit import errors
from infrakit.rpc import discovery, dispatch, http, jsonrpc, sockets
from infrakit.rpc import flavor as flavor_rpc
from infrakit.rpc import group as group_rpc
from infrakit.rpc import instance as instance_rpc
from infrakit.rpc import manager as manager_rpc
from infrakit.rpc import metadata as metadata_rpc
from infrakit.spi import flavor, handshake, instance, manager, metadata

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024
"""Largest request body accepted, in bytes; larger ones get a JSON-RPC error."""


class Server:
    """Serves implementation objects on ``<plugins dir>/<name>`` until stopped.

    HTTP is :class:`infrakit.rpc.http.ServerProtocol` (measured leaner than aiohttp's
    server: see that module).
    """

    def __init__(self, name: str, *, instance: Any = None, flavor: Any = None,
                 group: Any = None, manager: Any = None, metadata: Any = None,
                 plugins_dir: str | pathlib.Path | None = None,
                 extra_methods: dispatch.Methods | None = None,
                 max_body: int = MAX_BODY) -> None:
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
        self._connections: set[http.ServerProtocol] = set()
        self._listener: asyncio.AbstractServer | None = None
        self._inode: int | None = None

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

        # InfraKit v0.1-v0.2 asked Plugin.Implements; answering it costs nothing.
        return {"Handshake.Implements": answer_implements, "Plugin.Implements": answer_implements,
                "Handshake.Types": answer_types}

    async def start(self) -> None:
        """Bind the socket (0600 in a 0700 dir), write the pid file, start answering."""
        sockets.ensure_dir(self.directory)
        path = sockets.socket_path(self.directory, self.name)
        sockets.claim(path)
        # The pid file first: whoever sees the socket answer can read who answers.
        sockets.write_pid(path)
        too_big = (413, _encode(jsonrpc.error(None, errors.ProtocolError(
            f"invalid request: body exceeds the limit of {self.max_body} bytes"))))

        def connection() -> http.ServerProtocol:
            return http.ServerProtocol(self._handle, max_body=self.max_body, too_big=too_big,
                                       connections=self._connections)

        old_umask = os.umask(0o177)
        try:
            self._listener = await asyncio.get_running_loop().create_unix_server(
                connection, str(path))
        except OSError as exc:
            sockets.pid_path(path).unlink(missing_ok=True)
            raise errors.UsageError(f"cannot listen at {path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._inode = os.lstat(path).st_ino
        self.path = path
        log.info("plugin %s listening at %s (%s)", self.name, path,
                 ", ".join(api.key() for api in self.apis))

    async def stop(self) -> None:
        """Stop answering and remove the socket and pid file."""
        if self._listener is not None:
            self._listener.close()
            for connection in list(self._connections):
                connection.close()  # idle keep-alive connections close now, busy ones after
            busy = [asyncio.ensure_future(c.wait_done()) for c in self._connections]
            if busy:
                await asyncio.wait(busy, timeout=5.0)
            for connection in list(self._connections):
                connection.abort()  # still busy after 5 s: its caller will see the error
            self._listener = None
        if self.path is not None:
            sockets.release(self.path, inode=self._inode)
            log.info("plugin %s stopped", self.name)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _handle(self, method: bytes, body: bytes) -> http.Reply:
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


async def serve(name: str, **kwargs: Any) -> None:
    """Serve until SIGTERM or SIGINT, then clean up the socket and pid file."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with Server(name, **kwargs):
        await stopping.wait()


def run(name: str, **kwargs: Any) -> None:
    """Blocking entry point for plugin processes: a start-up failure exits with one line."""
    try:
        asyncio.run(serve(name, **kwargs))
    except errors.InfrakitError as exc:
        print(f"{name}: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
