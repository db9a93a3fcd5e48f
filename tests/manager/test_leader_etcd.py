"""etcd leadership against a real etcd: one leader, takeover within TTL + 1 s, fencing,
loss on keep-alive failure, and an etcd member restart."""

from __future__ import annotations

import asyncio
import time

import pytest
from elections import Contenders, eventually

from infrakit import errors, testing_etcd
from infrakit.manager import etcd, leader, leader_etcd

TTL = 2  # etcd's smallest lease with its default election timeout


def leaders(leads: list[leader_etcd.EtcdLeadership]) -> list[str]:
    return [lead.name for lead in leads if lead.is_leader()]


async def contend(client: etcd.Client, key: str, *names: str) -> list[leader_etcd.EtcdLeadership]:
    leads = [leader_etcd.EtcdLeadership(client, n, key=key, ttl=TTL) for n in names]
    for lead in leads:
        await lead.start()
    return leads


async def stop_all(leads: list[leader_etcd.EtcdLeadership]) -> None:
    for lead in leads:
        await lead.stop()


def losses(lead: leader.Leadership) -> list[str]:
    """Collects the reasons of every loss ``lead`` signals from now on."""
    reasons: list[str] = []
    lead.on_change(lambda change: reasons.append(change.reason) if not change.leading else None)
    return reasons


async def test_exactly_one_of_three_contenders_leads(client: etcd.Client, prefix: str) -> None:
    leads = await contend(client, prefix + "leader", "m1", "m2", "m3")
    try:
        await eventually(lambda: len(leaders(leads)) == 1, timeout=3)
        await asyncio.sleep(TTL)  # through several keep-alives
        [name] = leaders(leads)

        infos = [await lead.leader_info() for lead in leads]
        assert {info.name for info in infos} == {name}
        assert infos[0].lease != 0 and 0 < infos[0].ttl <= TTL
    finally:
        await stop_all(leads)


async def test_token_is_the_leader_keys_create_revision_and_lease(
        client: etcd.Client, prefix: str) -> None:
    [lead] = await contend(client, prefix + "leader", "m1")
    try:
        await eventually(lead.is_leader, timeout=3)
        token = lead.token()
        kv = await client.get(prefix + "leader")

        assert token is not None and kv is not None
        assert (token.generation, token.lease, token.key) == (
            kv.create_revision, kv.lease, prefix + "leader")
    finally:
        await lead.stop()


async def test_clean_stop_hands_over_at_once(client: etcd.Client, prefix: str) -> None:
    leads = await contend(client, prefix + "leader", "m1", "m2", "m3")
    try:
        await eventually(lambda: len(leaders(leads)) == 1, timeout=3)
        [first] = [lead for lead in leads if lead.is_leader()]
        token = first.token()
        assert token is not None

        await first.stop()

        # The lease is revoked at once, so nobody waits for it to expire (bench/failover.py
        # measures how fast the next leader takes over).
        assert await client.time_to_live(token.lease) == -1
        rest = [lead for lead in leads if lead is not first]
        await eventually(lambda: len(leaders(rest)) == 1, timeout=3)
        assert (await first.leader_info()).name in leaders(rest)
    finally:
        await stop_all(leads)


async def test_leader_killed_9_is_replaced_once_its_lease_expires(
        client: etcd.Client, etcd_member: testing_etcd.EtcdProcess, prefix: str,
        contenders: Contenders) -> None:
    key = prefix + "leader"
    child = await contenders.start("etcd", etcd_member.url, key, "child", str(TTL))
    assert await child.line(timeout=10) == "leading"
    leads = await contend(client, key, "m1", "m2")
    try:
        await asyncio.sleep(0.2)
        assert leaders(leads) == []

        await child.kill9()
        killed = time.monotonic()
        await eventually(lambda: len(leaders(leads)) == 1, timeout=TTL + 3)
        took = time.monotonic() - killed

        # Never before the dead leader's lease could have expired (how soon after is
        # measured by bench/failover.py, not asserted here).
        assert took >= TTL / 3
    finally:
        await stop_all(leads)


async def test_revoked_lease_is_a_loss_and_another_leads(client: etcd.Client,
                                                         prefix: str) -> None:
    leads = await contend(client, prefix + "leader", "m1", "m2")
    try:
        await eventually(lambda: len(leaders(leads)) == 1, timeout=3)
        [first] = [lead for lead in leads if lead.is_leader()]
        reasons = losses(first)
        token = first.token()
        assert token is not None

        await client.revoke(token.lease)

        await eventually(lambda: bool(reasons), timeout=TTL)
        assert first.token() != token  # gone (m1 may already have won again, with a new one)
        await eventually(lambda: len(leaders(leads)) == 1, timeout=TTL + 2)
        [now] = [lead for lead in leads if lead.is_leader()]
        assert now.token() != token
    finally:
        await stop_all(leads)


async def test_keep_alive_failure_is_signalled_as_loss_within_the_ttl(
        own_etcd: testing_etcd.EtcdProcess) -> None:
    async with etcd.Client(own_etcd.url, timeout=1.0) as client:
        [lead] = await contend(client, "infrakit/leader", "m1")
        try:
            await eventually(lead.is_leader, timeout=3)
            reasons = losses(lead)

            own_etcd.pause()  # keep-alives now time out
            paused = time.monotonic()
            await eventually(lambda: bool(reasons), timeout=TTL)
            assert time.monotonic() - paused < TTL * 5 / 6  # before the lease could expire
            assert "keep-alive" in reasons[0]
            assert not lead.is_leader()

            own_etcd.resume()
            await eventually(lead.is_leader, timeout=TTL + 3)
        finally:
            own_etcd.resume()
            await lead.stop()


async def test_leadership_recovers_after_an_etcd_member_restart(
        own_etcd: testing_etcd.EtcdProcess) -> None:
    async with etcd.Client(own_etcd.url, timeout=1.0) as client:
        leads = await contend(client, "infrakit/leader", "m1", "m2", "m3")
        try:
            await eventually(lambda: len(leaders(leads)) == 1, timeout=3)
            [first] = [lead for lead in leads if lead.is_leader()]
            reasons = losses(first)
            await client.put("survives", b"yes")

            own_etcd.stop()
            await eventually(lambda: bool(reasons), timeout=TTL)
            assert leaders(leads) == []
            own_etcd.start()

            took = await eventually(lambda: len(leaders(leads)) == 1, timeout=TTL + 3)
            assert took < TTL  # the old leader revoked its stale lease once etcd was back
            for _ in range(10):
                assert len(leaders(leads)) == 1
                await asyncio.sleep(0.05)
            kv = await client.get("survives")
            assert kv is not None and kv.value == b"yes"
        finally:
            await stop_all(leads)


async def test_changes_report_gain_then_loss_on_stop(client: etcd.Client, prefix: str) -> None:
    [lead] = await contend(client, prefix + "leader", "m1")
    got: list[bool] = []

    async def follow() -> None:
        async for change in lead.changes():
            got.append(change.leading)

    follower = asyncio.create_task(follow())
    await eventually(lead.is_leader, timeout=3)
    await lead.stop()
    await asyncio.wait_for(follower, 1)

    assert got[-2:] == [True, False]


async def test_unreachable_etcd_is_unavailable() -> None:
    async with etcd.Client("http://127.0.0.1:9", timeout=0.5) as client:
        with pytest.raises(errors.Unavailable, match=r"127\.0\.0\.1:9"):
            await client.get("k")


@pytest.mark.parametrize("ttl", [0, -5])
def test_ttl_must_be_at_least_one_second(ttl: int) -> None:
    with pytest.raises(errors.InvalidError, match="ttl"):
        leader_etcd.EtcdLeadership(etcd.Client("http://127.0.0.1:9"), "m1", ttl=ttl)
