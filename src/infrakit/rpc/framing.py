"""HTTP/1.1 framing as we speak it, pure: parse request and response heads and bodies out of
a receive buffer, and encode the bytes of a request or a reply. No I/O.

``rpc.httpserver`` (the server protocol) and ``rpc.pool`` (the client connections) feed
bytes in as they arrive and call these to cut complete messages out. We need only POST,
Content-Length or chunked bodies and keep-alive, so the framing stays small (see
``rpc.httpserver`` for why we do not use aiohttp).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_HEAD = 64 * 1024
"""Largest request or response head accepted, in bytes."""

MAX_ANSWER = 1 << 30
"""Largest response body a client accepts, in bytes."""

REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request", 405: b"Method Not Allowed",
           413: b"Request Entity Too Large", 431: b"Request Header Fields Too Large",
           500: b"Internal Server Error"}

_NO_BODY = frozenset({204, 304})
"""Statuses whose responses never carry a body, whatever their headers say (RFC 9112 6.3)."""


class BadRequest(Exception):
    """A request that is not HTTP/1.x as we speak it: answered with 400, then closed."""


class TooBig(Exception):
    """A body over the limit: a server answers its 413 reply, then closes."""


@dataclass(frozen=True, slots=True)
class Head:
    """A request head."""

    method: bytes
    keep: bool
    """Keep the connection open after the reply."""
    length: int | None
    """The Content-Length; ``None`` for a chunked body."""
    expect: bool = False
    """The client waits for ``100 Continue`` before it sends the body."""


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A response head, with how its body ends."""

    status: int
    keep: bool
    """The server keeps the connection open after this response."""
    framing: Literal["length", "chunked", "close"]
    """``close``: the body ends when the connection does."""
    length: int = 0
    """The body's size when ``framing`` is ``length``."""


def encode_request(body: bytes) -> bytes:
    """A keep-alive ``POST /`` carrying a JSON ``body``."""
    return (b"POST / HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


def encode_reply(status: int, body: bytes, *, keep: bool) -> bytes:
    """A reply with a JSON ``body``; a 204 has neither body nor Content-Length (RFC 9110
    8.6), which ends it as surely as ``Content-Length: 0`` would."""
    head = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown"))
    if status in _NO_BODY:
        body = b""
    else:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    if not keep:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


def take_head(buffer: bytearray, *, max_body: int) -> Head | None:
    """Remove a complete request head from ``buffer``; ``None`` while it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
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
    return Head(method=parts[0], keep=keep, length=length, expect=expect)


def take_response_head(buffer: bytearray) -> ResponseHead | None:
    """Remove a complete response head from ``buffer``; ``None`` while it is incomplete.
    Raises ``ValueError`` for what is not an HTTP response."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ValueError("not an HTTP response: its head is too long")
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[:end + 4]
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = headers.get(b"connection", b"").lower() != b"close"
    if status in _NO_BODY:
        return ResponseHead(status=status, keep=keep, framing="length")
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        return ResponseHead(status=status, keep=keep, framing="chunked")
    if b"content-length" in headers:
        if not headers[b"content-length"].isdigit():
            raise ValueError("not an HTTP response: bad Content-Length")
        return ResponseHead(status=status, keep=keep, framing="length",
                            length=int(headers[b"content-length"]))
    return ResponseHead(status=status, keep=False, framing="close")


def take_response_body(buffer: bytearray, head: ResponseHead) -> bytes | None:
    """Remove the body ``head`` announced from ``buffer``; ``None`` while it is incomplete
    (always, for a body that ends with the connection). Raises ``ValueError`` for a bad one."""
    if head.framing == "close":
        return None
    length = None if head.framing == "chunked" else head.length
    try:
        return take_body(buffer, length=length, max_body=MAX_ANSWER)
    except (BadRequest, TooBig) as exc:
        raise ValueError(f"bad HTTP response body: {exc or 'too large'}") from None


def take_body(buffer: bytearray, *, length: int | None, max_body: int) -> bytes | None:
    """Remove a body of ``length`` bytes (``None``: chunked) from ``buffer``; ``None`` while
    it is incomplete."""
    if length is not None:
        if len(buffer) < length:
            return None
        body = bytes(buffer[:length])
        del buffer[:length]
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
