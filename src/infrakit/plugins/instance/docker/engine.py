"""A small asyncio client for the Docker Engine API on its unix socket (or plain TCP).

The ``instance-docker`` plugin (:mod:`.plugin`) makes every call through :class:`Engine`, and
its event watcher (:mod:`.events`) reads ``/events`` through :meth:`Engine.events`.

Why our own client and not the Docker SDK for Python (PyPI ``docker``): the plugin is an
asyncio daemon, and the one call that matters most, the ``/events`` stream that wakes the
group, must be read without a thread parked on it; the SDK is synchronous (requests and
urllib3) and its ``events()`` is a blocking generator. The plugin needs eleven endpoints and
JSON in and out, which is a page of code over the HTTP/1.1 framing the RPC layer already has
(``infrakit.rpc.framing``: response heads and bodies, pure); so the core installs no extra
library for Docker and there is no ``[docker]`` extra to forget. Each call opens its own
connection (``Connection: close``): a unix-socket connect costs microseconds beside the tens
of milliseconds dockerd spends creating or starting a container.

Errors: an engine that cannot be reached (no socket, refused, closed mid-answer) raises
``errors.Unavailable``, one that does not answer in time ``errors.CallTimeout`` (both
``TemporaryError``: retry later). HTTP statuses are returned, not raised: what a 404 or a 409
means depends on the call, and the plugin decides.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit.rpc import framing

DEFAULT_URL = "unix:///var/run/docker.sock"
DEFAULT_VERSION = "1.25"
"""The API version the original asked for; every dockerd since 1.13 speaks it."""
TIMEOUT = 60.0
"""Seconds a call may take unless it says otherwise."""
_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """One response: its status and body."""

    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def message(self) -> str:
        """Docker's ``{"message": …}``, else the body as text."""
        try:
            data = self.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])
        return self.body.decode(errors="replace").strip() or f"HTTP {self.status}"


class Engine:
    """The Engine API at ``url`` (``unix:///path`` or ``tcp://host:port``), API ``version``."""

    def __init__(self, url: str = DEFAULT_URL, *, version: str = DEFAULT_VERSION) -> None:
        self.url = url
        self.version = version.removeprefix("v")
        self._connect = _connector(url)

    async def call(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                   body: Any = None, timeout: float | None = TIMEOUT) -> Answer:
        """``method path?query`` with a JSON ``body``; the answer, whatever its status."""
        request = self._request(method, path, query=query, body=body)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._open()
                try:
                    writer.write(request)
                    return await _read_answer(reader)
                finally:
                    writer.close()
        except TimeoutError:
            raise errors.CallTimeout(
                f"Docker engine at {self.url}: no answer to {method} {path} within "
                f"{timeout:g}s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise self._unreachable(exc) from None

    async def events(self, filters: Mapping[str, list[str]], *,
                     on_open: Callable[[], None] | None = None) -> AsyncIterator[dict[str, Any]]:
        """The engine's events matching ``filters``, as they happen, until the engine closes
        the stream (``Unavailable`` when it drops). ``on_open`` runs once the engine has
        accepted the subscription: events from then on are not missed."""
        request = self._request("GET", "/events",
                                query={"filters": json.dumps(dict(filters))}, body=None)
        try:
            reader, writer = await self._open()
        except OSError as exc:
            raise self._unreachable(exc) from None
        try:
            writer.write(request)
            head = await _read_head(reader, bytearray())
            if head.status != 200:
                body = await reader.read(_READ)
                raise errors.PermanentError(
                    f"Docker engine at {self.url} refused the event stream: "
                    f"{Answer(head.status, body).message}")
            if on_open is not None:
                on_open()
            pending = b""
            async for piece in _pieces(reader, chunked=head.framing == "chunked"):
                pending += piece
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise self._unreachable(exc) from None
        finally:
            writer.close()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        opened: tuple[asyncio.StreamReader, asyncio.StreamWriter] = await self._connect()
        return opened

    def _request(self, method: str, path: str, *, query: Mapping[str, Any] | None,
                 body: Any) -> bytes:
        target = f"/v{self.version}{path}"
        if query:
            target += "?" + urllib.parse.urlencode(query)
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: InfraKit\r\n"
                f"Connection: close\r\nContent-Length: {len(data)}\r\n")
        if body is not None:
            head += "Content-Type: application/json\r\n"
        return head.encode() + b"\r\n" + data

    def _unreachable(self, exc: BaseException) -> errors.Unavailable:
        reason = (exc.strerror if isinstance(exc, OSError) and exc.strerror
                  else str(exc) or type(exc).__name__)
        if isinstance(exc, asyncio.IncompleteReadError):
            reason = "the engine closed the connection"
        return errors.Unavailable(f"Docker engine at {self.url} is unreachable ({reason})",
                                  delay=1.0)


def _connector(url: str) -> Callable[[], Any]:
    """A coroutine function opening one connection to ``url``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "unix" and parsed.path:
        return lambda: asyncio.open_unix_connection(parsed.path, limit=1 << 20)
    if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
        host, port = parsed.hostname, parsed.port
        return lambda: asyncio.open_connection(host, port, limit=1 << 20)
    raise errors.UsageError(
        f"--url: expected unix:///path/to/docker.sock or tcp://host:port, got {url!r}")


async def _read_head(reader: asyncio.StreamReader,
                     buffer: bytearray) -> framing.ResponseHead:
    while True:
        head = framing.take_response_head(buffer)
        if head is not None:
            return head
        data = await reader.read(_READ)
        if not data:
            raise asyncio.IncompleteReadError(bytes(buffer), None)
        buffer += data


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    buffer = bytearray()
    head = await _read_head(reader, buffer)
    if head.framing == "close":
        return Answer(head.status, bytes(buffer) + await reader.read())
    while (body := framing.take_response_body(buffer, head)) is None:
        data = await reader.read(_READ)
        if not data:
            raise asyncio.IncompleteReadError(bytes(buffer), None)
        buffer += data
    return Answer(head.status, body)


async def _pieces(reader: asyncio.StreamReader, *, chunked: bool) -> AsyncIterator[bytes]:
    """A streamed body as it arrives: chunk by chunk, or read by read."""
    if not chunked:
        while data := await reader.read(_READ):
            yield data
        return
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]

