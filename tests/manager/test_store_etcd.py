"""The etcd store's own behaviours: fenced writes, InfraKit's key, bad values kept aside."""

from __future__ import annotations

import pytest
from elections import eventually

from infrakit import errors
from infrakit.manager import etcd, leader, leader_etcd, store, store_etcd
from infrakit.spi import group

WEB = group.ID("web")


def doc_with(size: int) -> store.Document:
    return store.Document().with_group(group.Spec(id=WEB, properties={"Size": size}),
                                       plugin_name="group")


def test_document_lives_at_infrakits_key() -> None:
    s = store_etcd.EtcdStore(etcd.Client("http://127.0.0.1:1"), token=None)
    assert s.doc_key == "infrakit/configs/groups.json"


async def test_deposed_leaders_late_write_fails_in_etcd(
        client: etcd.Client, leading: leader_etcd.EtcdLeadership, prefix: str) -> None:
    configs = prefix + "configs/"
    mine = store_etcd.EtcdStore(client, token=leading.token, prefix=configs)
    await mine.save(doc_with(1))
    stale = leading.token()
    assert stale is not None
    successor = leader_etcd.EtcdLeadership(client, "m2", key=leading.key, ttl=2)
    await successor.start()
    try:
        await client.revoke(stale.lease)  # as if m1's lease had expired
        await eventually(successor.is_leader, timeout=3)
        # A write that left m1 before it noticed: it still carries the old token.
        late = store_etcd.EtcdStore(client, token=lambda: stale, prefix=configs)

        with pytest.raises(errors.NotLeaderError, match="leadership lost"):
            await late.save(doc_with(2))
        with pytest.raises(errors.NotLeaderError):
            await late.save_state(WEB, {"step": 9})

        theirs = store_etcd.EtcdStore(client, token=successor.token, prefix=configs)
        assert await theirs.load() == doc_with(1)
        await theirs.save(doc_with(3))
        assert await theirs.load() == doc_with(3)
    finally:
        await successor.stop()


async def test_store_refuses_to_write_once_leadership_is_gone(
        client: etcd.Client, leading: leader_etcd.EtcdLeadership, prefix: str) -> None:
    s = store_etcd.EtcdStore(client, token=leading.token, prefix=prefix)
    await leading.stop()

    with pytest.raises(errors.NotLeaderError, match="does not lead"):
        await s.save(doc_with(1))
    assert await client.get(s.doc_key) is None


async def test_a_file_leadership_token_cannot_fence_etcd_writes(
        client: etcd.Client, prefix: str) -> None:
    s = store_etcd.EtcdStore(client, token=lambda: leader.Token(generation=7), prefix=prefix)
    with pytest.raises(errors.InvalidError, match="not an etcd token"):
        await s.save(doc_with(1))


async def test_forced_save_keeps_the_corrupt_value_aside(
        client: etcd.Client, leading: leader_etcd.EtcdLeadership, prefix: str) -> None:
    s = store_etcd.EtcdStore(client, token=leading.token, prefix=prefix)
    await client.put(s.doc_key, b"{not json")

    await s.save(doc_with(1), force=True)

    aside = [kv for kv in await client.get_prefix(s.doc_key + ".corrupt-")]
    assert [kv.value for kv in aside] == [b"{not json"]
    assert await s.load() == doc_with(1)


async def test_a_state_kept_aside_is_not_a_group_state(
        client: etcd.Client, leading: leader_etcd.EtcdLeadership, prefix: str) -> None:
    s = store_etcd.EtcdStore(client, token=leading.token, prefix=prefix)
    await client.put(s.state_key(group.ID("web")), b"{not json")

    await s.save_state(group.ID("web"), {"phase": "idle"}, force=True)

    assert len(await client.get_prefix(s.state_key(group.ID("web")) + ".corrupt-")) == 1
    assert await s.load_states() == {"web": {"phase": "idle"}}
