"""Our etcd client against a real etcd's JSON gateway, and moving between members."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from infrakit import errors, testing, testing_etcd
from infrakit.manager import etcd


async def test_put_get_and_delete_round_trip_bytes(client: etcd.Client, prefix: str) -> None:
    value = bytes(range(256))
    revision = await client.put(prefix + "k", value)

    kv = await client.get(prefix + "k")

    assert kv is not None
    assert (kv.key, kv.value, kv.create_revision, kv.version) == (prefix + "k", value,
                                                                  revision, 1)
    assert await client.delete(prefix + "k") == 1
    assert await client.get(prefix + "k") is None


async def test_prefix_range_finds_only_keys_under_the_prefix(client: etcd.Client,
                                                             prefix: str) -> None:
    for key in ("a/1", "a/2", "a0", "b"):
        await client.put(prefix + key, b"x")

    found = await client.get_prefix(prefix + "a/")

    assert [kv.key for kv in found] == [prefix + "a/1", prefix + "a/2"]


@pytest.mark.parametrize(("prefix", "end"), [
    ("a/", b"a0"), ("az", b"a{"), ("\u00e9", b"\xc3\xaa"), ("", b"\0"),
])
def test_prefix_end_is_the_first_key_past_the_prefix(prefix: str, end: bytes) -> None:
    assert etcd.prefix_end(prefix) == end


async def test_txn_runs_success_only_when_every_compare_holds(client: etcd.Client,
                                                              prefix: str) -> None:
    key = prefix + "k"
    create = [etcd.Compare(key, "CREATE", 0)]

    first = await client.txn(create, [etcd.Put(key, b"one")], [etcd.Get(key)])
    second = await client.txn(create, [etcd.Put(key, b"two")], [etcd.Get(key)])

    assert first.succeeded and not second.succeeded
    assert [kv.value for kv in second.ranges[0]] == [b"one"]
    assert second.ranges[0][0].create_revision == first.revision
    mod = second.ranges[0][0].mod_revision
    third = await client.txn([etcd.Compare(key, "MOD", mod), etcd.Compare(key, "VALUE", b"one")],
                             [etcd.Put(key, b"three")])
    assert third.succeeded
    assert (await client.get(key)) == etcd.KeyValue(
        key=key, value=b"three", create_revision=first.revision,
        mod_revision=third.revision, version=2)


async def test_lease_keeps_its_keys_until_revoked(client: etcd.Client, prefix: str) -> None:
    lease = await client.grant(5)
    await client.put(prefix + "k", b"v", lease=lease.id)

    assert await client.keepalive(lease.id) == 5
    assert 0 < await client.time_to_live(lease.id) <= 5
    assert await client.revoke(lease.id) is True

    assert await client.get(prefix + "k") is None
    assert await client.keepalive(lease.id) == 0
    assert await client.time_to_live(lease.id) == -1
    assert await client.revoke(lease.id) is False


async def test_watch_sees_puts_and_deletes_in_order(client: etcd.Client, prefix: str) -> None:
    key = prefix + "k"
    start = await client.put(key, b"1")
    await client.put(key, b"2")
    await client.delete(key)

    async with client.watch(key, start_revision=start) as events:
        got = [await asyncio.wait_for(anext(events), 2) for _ in range(3)]

    assert [(e.type, e.kv.value) for e in got] == [("PUT", b"1"), ("PUT", b"2"), ("DELETE", b"")]


async def test_watch_ends_unavailable_when_the_member_goes(
        own_etcd: testing_etcd.EtcdProcess) -> None:
    async with etcd.Client(own_etcd.url) as client, client.watch("k") as events:
        waiting = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.1)
        own_etcd.kill()
        with pytest.raises(errors.Unavailable):
            await asyncio.wait_for(waiting, 5)


async def test_a_dead_endpoint_is_skipped_for_a_live_one(
        etcd_member: testing_etcd.EtcdProcess, prefix: str) -> None:
    dead = f"http://127.0.0.1:{testing.free_port()}"
    async with etcd.Client([dead, etcd_member.url]) as client:
        await client.put(prefix + "k", b"v")
        assert await client.get(prefix + "k") is not None


class Hung:
    """A member that accepts connections and never answers, like a SIGSTOPped etcd."""

    def __init__(self) -> None:
        self.url = ""
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)  # held open, unanswered, until the fixture ends


@pytest.fixture
async def hung() -> AsyncIterator[Hung]:
    member = Hung()
    server = await asyncio.start_server(member.accept, "127.0.0.1", 0)
    member.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield member
    finally:
        for writer in member.writers:
            writer.close()
        server.close()
        await server.wait_closed()


Call = Callable[[etcd.Client, str, int], Awaitable[Any]]

REPEATABLE: dict[str, Call] = {
    "range": lambda c, p, _: c.get(p + "k"),
    "read-only txn": lambda c, p, _: c.txn([], [etcd.Get(p + "k")]),
    "txn said to be idempotent": lambda c, p, _: c.txn(
        [etcd.Compare(p + "new", "CREATE", 0)], [etcd.Put(p + "new", b"x")], idempotent=True),
    "lease grant": lambda c, _p, _lease: c.grant(5),
    "lease keep-alive": lambda c, _p, lease: c.keepalive(lease),
    "lease time-to-live": lambda c, _p, lease: c.time_to_live(lease),
    "lease revoke": lambda c, _p, lease: c.revoke(lease),
}


@pytest.mark.parametrize("call", REPEATABLE.values(), ids=REPEATABLE.keys())
async def test_a_repeatable_call_that_times_out_moves_to_the_next_member(
        call: Call, hung: Hung, etcd_member: testing_etcd.EtcdProcess, client: etcd.Client,
        prefix: str) -> None:
    lease = await client.grant(5)
    async with etcd.Client([hung.url, etcd_member.url], timeout=0.3) as moving:
        await call(moving, prefix, lease.id)
        assert moving.current_endpoint == etcd_member.url
        await call(moving, prefix, lease.id)
    assert hung.connections == 1, "the second call went to the hung member again"


WRITES: dict[str, Call] = {
    "put": lambda c, p, _: c.put(p + "k", b"after"),
    "delete": lambda c, p, _: c.delete(p + "k"),
    "writing txn": lambda c, p, _: c.txn([], [etcd.Put(p + "k", b"after")]),
}


@pytest.mark.parametrize("call", WRITES.values(), ids=WRITES.keys())
async def test_a_write_that_may_have_been_applied_is_not_repeated_on_another_member(
        call: Call, hung: Hung, etcd_member: testing_etcd.EtcdProcess, client: etcd.Client,
        prefix: str) -> None:
    await client.put(prefix + "k", b"before")
    async with etcd.Client([hung.url, etcd_member.url], timeout=0.3) as moving:
        with pytest.raises(errors.CallTimeout, match="may or may not have been applied"):
            await call(moving, prefix, 0)
        kv = await client.get(prefix + "k")
        assert kv is not None and kv.value == b"before"
        # Not repeated, but the next call starts past the member that failed.
        assert moving.current_endpoint == etcd_member.url


async def test_a_watch_moves_on_from_a_hung_member(
        hung: Hung, etcd_member: testing_etcd.EtcdProcess, client: etcd.Client,
        prefix: str) -> None:
    start = await client.put(prefix + "k", b"1")
    async with etcd.Client([hung.url, etcd_member.url], timeout=0.3) as moving:
        async def first_event() -> etcd.Event:
            async with moving.watch(prefix + "k", start_revision=start) as events:
                return await anext(events)

        event = await asyncio.wait_for(first_event(), 10)  # hangs for good without the fix

    assert (event.type, event.kv.value) == ("PUT", b"1")
    assert hung.connections == 1


async def test_every_member_failing_is_named_and_a_last_timeout_is_a_timeout(hung: Hung) -> None:
    refused = f"http://127.0.0.1:{testing.free_port()}"
    async with etcd.Client([refused, hung.url], timeout=0.3) as client:
        with pytest.raises(errors.CallTimeout) as caught:
            await client.get("k")
    assert refused in caught.value.message and hung.url in caught.value.message


async def test_etcd_errors_keep_their_meaning(client: etcd.Client) -> None:
    with pytest.raises(errors.InvalidError, match="etcd at"):
        await client.call("/v3/kv/range", {"key": 5}, idempotent=True)
    with pytest.raises(errors.NotFoundError, match="lease not found"):
        await client.call("/v3/lease/revoke", {"ID": "12345"})


@pytest.mark.parametrize("endpoints", [[], ["127.0.0.1:2379"], ["unix:///tmp/etcd"]])
def test_endpoints_must_be_http_urls(endpoints: list[str]) -> None:
    with pytest.raises(errors.InvalidError, match="etcd endpoint"):
        etcd.Client(endpoints)
