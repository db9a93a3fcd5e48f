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

from aiohttp import web

from infrakit import errors
from infrakit.rpc import discovery, dispatch, jsonrpc, sockets
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
    """Serves implementation objects on ``<plugins dir>/<name>`` until stopped."""

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
        self._http: web.Server | None = None
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
        # aiohttp's low-level server: no router or middleware on the hot path.
        self._http = web.Server(self._handle, access_log=None)
        old_umask = os.umask(0o177)
        try:
            self._listener = await asyncio.get_running_loop().create_unix_server(
                self._http, str(path))
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
            assert self._http is not None
            self._http.pre_shutdown()  # idle keep-alive connections close now
            await self._http.shutdown(timeout=5.0)
            await self._listener.wait_closed()
            self._listener = None
        if self.path is not None:
            sockets.release(self.path, inode=self._inode)
            log.info("plugin %s stopped", self.name)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST":
            return _reply(jsonrpc.error(None, errors.ProtocolError(
                f"invalid request: use POST, not {request.method}")), status=405)
        body = await _read_body(request, limit=self.max_body)
        if body is None:
            failure = errors.ProtocolError(
                f"invalid request: body exceeds the limit of {self.max_body} bytes")
            return _reply(jsonrpc.error(None, failure), status=413)
        try:
            call = jsonrpc.parse_request(body)
        except errors.InfrakitError as exc:
            return _reply(jsonrpc.error(None, exc))
        answer = await self.answer(call)
        if call.notification:
            return web.Response(status=204)
        return web.Response(body=answer, content_type="application/json")

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


async def _read_body(request: web.BaseRequest, *, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    chunks, total = [], 0
    while chunk := await request.content.readany():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _reply(message: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.Response(body=_encode(message), status=status, content_type="application/json")


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
