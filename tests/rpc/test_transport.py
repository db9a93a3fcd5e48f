"""The lean HTTP/1.1 transport (``rpc.framing``, ``rpc.httpserver``, ``rpc.pool``): the server
protocol speaks what clients send, the client pool reads what servers answer, and it opens
connections only when they help."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from rpc_helpers import HYGIENE, http_post, raw

from infrakit.rpc import client, pool, server
from infrakit.spi import instance

pytestmark = HYGIENE


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
    connections = pool.Pool(str(path), limit=64, eager=4, patience=0.5)
    try:
        answers = await gather(100, lambda: connections.post(call("Instance.Validate", {})))
    finally:
        connections.close()
    assert all(status == 200 for status, _ in answers)
    assert plugin.most <= 4


async def test_a_slow_plugin_gets_every_call_in_flight_after_the_patience(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, plugin = slow
    plugin.delay = 0.3
    connections = pool.Pool(str(path), limit=20, eager=4, patience=0.01)
    try:
        await gather(20, lambda: connections.post(call("Instance.Validate", {})))
    finally:
        connections.close()
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
    connections = pool.Pool(str(path))
    try:
        first = await connections.post(b"{}")
        second = await connections.post(b"{}")
    finally:
        connections.close()
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
    connections = pool.Pool(str(path))
    try:
        assert await connections.post(b"{}") == (200, b"{}")
        await asyncio.sleep(0.05)
        assert await connections.post(b"{}") == (200, b"{}")
    finally:
        connections.close()
        listener.close()
    assert served == 2


# Half-closed connections, notifications, stopping ------------------------------------------

async def test_a_request_then_a_half_close_is_still_answered(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, plugin = slow
    plugin.delay = 0.05  # the EOF arrives while the request is being served
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(keep_alive_post(call("Instance.Validate", {}, 1))
                     + keep_alive_post(call("Instance.Validate", {}, 2)))
        writer.write_eof()  # shutdown(SHUT_WR): nothing more comes, answers still wanted
        answers = [await asyncio.wait_for(_read_answer(reader), 10) for _ in range(2)]
        assert await asyncio.wait_for(reader.read(), 10) == b""  # then the server closes
    finally:
        writer.close()
    assert [a["id"] for a in answers] == [1, 2]


async def test_a_half_close_with_nothing_pending_closes_the_connection(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, _ = slow
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")  # never completed
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        writer.close()


def notification(method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": {}}).encode()


async def test_a_notification_answer_is_complete_without_the_server_closing(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, _ = slow
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(keep_alive_post(notification("Instance.Validate")))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 204 ")
        lines = [line.lower() for line in head.split(b"\r\n")]
        assert not any(line.startswith((b"transfer-encoding", b"connection: close"))
                       for line in lines)
        assert all(line in (b"content-length: 0",) for line in lines
                   if line.startswith(b"content-length"))
        # Nothing follows the head, and the same connection serves the next call.
        writer.write(keep_alive_post(call("Instance.Validate", {}, 7)))
        assert (await asyncio.wait_for(_read_answer(reader), 10))["id"] == 7
    finally:
        writer.close()


async def test_the_pool_does_not_wait_for_close_after_a_204(
        slow: tuple[pathlib.Path, Slow]) -> None:
    path, _ = slow
    connections = pool.Pool(str(path), eager=1)
    try:
        async with asyncio.timeout(10):  # the server keeps the connection for 75 s
            assert await connections.post(notification("Instance.Validate")) == (204, b"")
            status, answer = await connections.post(call("Instance.Validate", {}))
    finally:
        connections.close()
    assert status == 200 and json.loads(answer)["result"]["OK"] is True


class Stuck:
    """An instance plugin whose Validate waits until released (or cancelled)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def validate(self, properties: Any) -> None:
        self.entered.set()
        await self.release.wait()


def tasks_now() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if not task.done()}


async def test_stop_leaves_no_task_behind_even_with_a_call_stuck_in_flight(
        plugins_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "STOP_GRACE", 0.2, raising=False)
    before = tasks_now()
    plugin = Stuck()
    running = server.Server("stuck", instance=plugin, plugins_dir=plugins_dir)
    await running.start()
    assert running.path is not None
    idle_reader, idle_writer = await asyncio.open_unix_connection(str(running.path))
    reader, writer = await asyncio.open_unix_connection(str(running.path))
    try:
        writer.write(keep_alive_post(call("Instance.Validate", {})))
        await asyncio.wait_for(plugin.entered.wait(), 10)
        await running.stop()
        assert tasks_now() - before == set()
        # Both connections are closed, the stuck one without an answer.
        assert await asyncio.wait_for(idle_reader.read(), 10) == b""
        assert await asyncio.wait_for(reader.read(), 10) == b""
    finally:
        plugin.release.set()
        writer.close()
        idle_writer.close()


async def test_stop_waits_for_a_call_in_flight_and_answers_it(
        plugins_dir: pathlib.Path) -> None:
    before = tasks_now()
    plugin = Stuck()
    running = server.Server("stuck", instance=plugin, plugins_dir=plugins_dir)
    await running.start()
    assert running.path is not None
    reader, writer = await asyncio.open_unix_connection(str(running.path))
    try:
        writer.write(keep_alive_post(call("Instance.Validate", {}, 3)))
        await asyncio.wait_for(plugin.entered.wait(), 10)
        stopping = asyncio.create_task(running.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        plugin.release.set()
        await asyncio.wait_for(stopping, 10)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Connection: close" in head
        assert await asyncio.wait_for(reader.read(), 10) != b""  # the body, then EOF
        assert tasks_now() - before == set()
    finally:
        writer.close()


# Closing the pool --------------------------------------------------------------------------

async def test_closing_the_pool_mid_call_closes_that_connection_when_the_call_ends(
        plugins_dir: pathlib.Path) -> None:
    plugin = Stuck()
    async with server.Server("stuck", instance=plugin, plugins_dir=plugins_dir) as running:
        assert running.path is not None
        connections = pool.Pool(str(running.path))
        in_flight = asyncio.create_task(connections.post(call("Instance.Validate", {})))
        await asyncio.wait_for(plugin.entered.wait(), 10)
        assert len(running._connections) == 1
        connections.close()
        plugin.release.set()
        status, _ = await asyncio.wait_for(in_flight, 10)
        assert status == 200  # the call itself was not cut short
        await _until(lambda: not running._connections)  # the server saw it close
        with pytest.raises(pool.Closed, match=r"connection pool for \S+ is closed"):
            await connections.post(call("Instance.Validate", {}))
        assert not running._connections  # and nothing was opened again


async def test_calls_waiting_for_a_connection_fail_clearly_when_the_pool_closes(
        plugins_dir: pathlib.Path) -> None:
    plugin = Stuck()
    async with server.Server("stuck", instance=plugin, plugins_dir=plugins_dir) as running:
        assert running.path is not None
        connections = pool.Pool(str(running.path), limit=1)
        first = asyncio.create_task(connections.post(call("Instance.Validate", {})))
        await asyncio.wait_for(plugin.entered.wait(), 10)
        second = asyncio.create_task(connections.post(call("Instance.Validate", {})))
        await asyncio.sleep(0.05)  # queued behind the limit
        connections.close()
        plugin.release.set()
        assert (await asyncio.wait_for(first, 10))[0] == 200
        with pytest.raises(pool.Closed, match=r"connection pool for \S+ is closed"):
            await asyncio.wait_for(second, 10)
        await _until(lambda: not running._connections)


async def test_a_client_closed_mid_call_serves_later_calls_on_a_fresh_pool(
        plugins_dir: pathlib.Path) -> None:
    plugin = Stuck()
    async with server.Server("stuck", instance=plugin, plugins_dir=plugins_dir) as running:
        assert running.path is not None
        caller = client.Client(running.path)
        in_flight = asyncio.create_task(caller.call("Instance.Validate", {}))
        await asyncio.wait_for(plugin.entered.wait(), 10)
        await caller.close()
        plugin.release.set()
        assert (await asyncio.wait_for(in_flight, 10))["OK"] is True
        await _until(lambda: not running._connections)
        assert (await caller.call("Instance.Validate", {}))["OK"] is True
        await caller.close()
        await _until(lambda: not running._connections)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 10 s) for ``condition``: the other end's close arrives a little later."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)
