"""The lean HTTP/1.1 transport (``rpc.http``): the server protocol speaks what clients send,
the client pool reads what servers answer, and it opens connections only when they help."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from rpc_helpers import http_post, raw

from infrakit.rpc import http, server
from infrakit.spi import instance


class Slow:
    """An instance plugin whose Validate takes ``delay`` seconds (it counts calls in flight)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.in_flight = self.most = 0

    async def validate(self, properties: Any) -> None:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        return [instance.Description(id=instance.ID(f"i-{n}"), tags={"n": str(n)})
                for n in range(int(tags.get("count", "0")))]


@pytest.fixture
async def slow(plugins_dir: pathlib.Path) -> AsyncIterator[tuple[pathlib.Path, Slow]]:
    plugin = Slow()
    async with server.Server("slow", instance=plugin, plugins_dir=plugins_dir) as running:
        assert running.path is not None
        yield running.path, plugin


def call(method: str, params: dict[str, Any], request_id: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params,
                       "id": request_id}).encode()


def keep_alive_post(body: bytes, *, extra: str = "") -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: p\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode() + body


async def test_one_connection_carries_many_requests_in_order(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, _ = slow
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        # Pipelined: both requests sent before either answer is read.
        writer.write(keep_alive_post(call("Instance.Validate", {}, 1))
                     + keep_alive_post(call("Instance.Validate", {}, 2)))
        answers = [await _read_answer(reader) for _ in range(2)]
    finally:
        writer.close()
    assert [a["id"] for a in answers] == [1, 2]


@pytest.mark.parametrize("head, body", [
    ("Transfer-Encoding: chunked\r\n", "chunked"),
    ("Expect: 100-continue\r\n", "after-continue"),
])
async def test_chunked_and_expect_continue_requests_are_served(
        slow: tuple[pathlib.Path, Slow], head: str, body: str) -> None:
    path, _ = slow
    payload = call("Instance.Validate", {})
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        if body == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                              for part in (payload[:10], payload[10:]))
            writer.write(f"POST / HTTP/1.1\r\nHost: p\r\n{head}\r\n".encode() + chunks
                         + b"0\r\n\r\n")
        else:
            writer.write(f"POST / HTTP/1.1\r\nHost: p\r\nContent-Length: {len(payload)}\r\n"
                         f"{head}\r\n".encode())
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(payload)
        answer = await _read_answer(reader)
    finally:
        writer.close()
    assert answer["result"]["OK"] is True


async def test_http_1_0_and_connection_close_end_the_connection(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, _ = slow
    body = call("Instance.Validate", {})
    for head in (b"POST / HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(body), None):
        request = head + body if head else http_post(body)
        answer = await raw(path, request)  # reads until the server closes
        assert b"Connection: close" in answer.partition(b"\r\n\r\n")[0]


async def test_a_malformed_request_line_gets_400_and_a_closed_connection(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, _ = slow
    answer = await raw(path, b"POST /\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


async def _read_answer(reader: asyncio.StreamReader) -> dict[str, Any]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    answer: dict[str, Any] = json.loads(await reader.readexactly(length))
    return answer


# The client pool ---------------------------------------------------------------------------

async def gather(count: int, call_once: Callable[[], Awaitable[Any]]) -> list[Any]:
    return await asyncio.gather(*(call_once() for _ in range(count)))


async def test_a_fast_plugin_is_served_over_a_few_connections(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, plugin = slow
    pool = http.Pool(str(path), limit=64, eager=4, patience=0.5)
    try:
        answers = await gather(100, lambda: pool.post(call("Instance.Validate", {})))
    finally:
        pool.close()
    assert all(status == 200 for status, _ in answers)
    assert plugin.most <= 4


async def test_a_slow_plugin_gets_every_call_in_flight_after_the_patience(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, plugin = slow
    plugin.delay = 0.3
    pool = http.Pool(str(path), limit=20, eager=4, patience=0.01)
    try:
        await gather(20, lambda: pool.post(call("Instance.Validate", {})))
    finally:
        pool.close()
    assert plugin.most == 20


async def test_the_client_reads_chunked_and_read_to_close_answers(
        plugins_dir: pathlib.Path) -> None:
    answers = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"a\":2}"]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    path = plugins_dir / "raw"
    listener = await asyncio.start_unix_server(answer, str(path))
    pool = http.Pool(str(path))
    try:
        first = await pool.post(b"{}")
        second = await pool.post(b"{}")
    finally:
        pool.close()
        listener.close()
    assert first == (200, b'{"a":1}')
    assert second == (200, b'{"a":2}')


async def test_a_connection_the_server_closed_while_idle_is_not_used_again(
        plugins_dir: pathlib.Path) -> None:
    served = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()  # keep-alive announced, then dropped: the next call finds it closed

    path = plugins_dir / "drops"
    listener = await asyncio.start_unix_server(answer, str(path))
    pool = http.Pool(str(path))
    try:
        assert await pool.post(b"{}") == (200, b"{}")
        await asyncio.sleep(0.05)
        assert await pool.post(b"{}") == (200, b"{}")
    finally:
        pool.close()
        listener.close()
    assert served == 2
