"""The etcd store (multi-host): InfraKit's key ``infrakit/configs/groups.json`` plus
``infrakit/configs/history/<gid>`` and ``infrakit/configs/state/<gid>``.

The manager uses it with etcd leadership (``etcd --endpoint URL``). Every write is one
transaction that holds only if the writer still leads: the leader key must still have
the create revision and lease of the writer's :class:`leader.Token`. A deposed leader's
late write therefore fails in etcd itself with :class:`errors.NotLeaderError`, however
late it arrives. The rules every store follows are in :mod:`infrakit.manager.store`.

Writes may be sent again to another etcd member when one times out (:mod:`.etcd`): the
transaction also compares the written key's mod revision with the one we read, so a
second application fails. When it does and the key already holds exactly what we wrote,
the first one landed (its answer was lost) and the write has succeeded.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pydantic

from infrakit import errors
from infrakit.manager import etcd, leader, store
from infrakit.spi import group

PREFIX = "infrakit/configs/"
"""InfraKit's prefix; the document is ``PREFIX + "groups.json"``."""
_CORRUPT_ASIDE = re.compile(r"\.corrupt-\d+$")
"""A key a corrupt value was copied aside to (:func:`_aside_if_corrupt`)."""


class EtcdStore:
    """``EtcdStore(client, token=leadership.token, prefix=PREFIX, history_limit=10)``.

    ``token`` is required: pass the leadership's ``token`` method, or ``None`` on purpose
    for an unfenced tool that writes without leading.
    """

    def __init__(self, client: etcd.Client, *, token: store.TokenSource | None,
                 prefix: str = PREFIX, history_limit: int = store.DEFAULT_HISTORY) -> None:
        self.client = client
        self.prefix = prefix
        self.history_limit = store.check_limit(history_limit)
        self._token = token
        self._last_good: store.Document | None = None
        self._lock = asyncio.Lock()

    @property
    def doc_key(self) -> str:
        return self.prefix + "groups.json"

    def history_key(self, gid: group.ID) -> str:
        return f"{self.prefix}history/{gid}"

    def state_key(self, gid: group.ID) -> str:
        return f"{self.prefix}state/{gid}"

    @property
    def last_good(self) -> store.Document | None:
        return self._last_good

    async def load(self) -> store.Document:
        kv = await self.client.get(self.doc_key)
        doc = _decode(kv, store.DOCUMENT) if kv else store.Document()
        self._last_good = doc
        return doc

    async def history(self, gid: group.ID) -> list[store.HistoryEntry]:
        kv = await self.client.get(self.history_key(gid))
        return _decode(kv, store.HISTORY_LIST) if kv else []

    async def load_state(self, gid: group.ID) -> store.State | None:
        kv = await self.client.get(self.state_key(gid))
        return _decode(kv, store.STATE) if kv else None

    async def load_states(self) -> dict[group.ID, store.State]:
        prefix = self.state_key(group.ID(""))
        found = await self.client.get_prefix(prefix)
        return {group.ID(kv.key[len(prefix):]): _decode(kv, store.STATE) for kv in found
                if not _CORRUPT_ASIDE.search(kv.key)}

    async def save(self, doc: store.Document, *, force: bool = False) -> None:
        store.require_token(self._token, action=f"write etcd key {self.doc_key!r}")
        async with self._lock:
            gids = list(doc.groups)
            seen = await self.client.txn([], [etcd.Get(self.doc_key)] +
                                         [etcd.Get(self.history_key(g)) for g in gids])
            doc_kv = _only(seen.ranges[0])
            ops = _aside_if_corrupt(doc_kv, store.DOCUMENT, force=force, revision=seen.revision)
            ops.append(etcd.Put(self.doc_key, store.encode(doc.to_wire())))
            for gid, found in zip(gids, seen.ranges[1:], strict=True):
                ops += self._history_ops(gid, doc, _only(found), force=force,
                                         revision=seen.revision)
            guard = [etcd.Compare(self.doc_key, "MOD", doc_kv.mod_revision if doc_kv else 0)]
            await self._write(guard, ops, action=f"write etcd key {self.doc_key!r}")
            self._last_good = doc

    def _history_ops(self, gid: group.ID, doc: store.Document, kv: etcd.KeyValue | None, *,
                     force: bool, revision: int) -> list[etcd.Op]:
        ops = _aside_if_corrupt(kv, store.HISTORY_LIST, force=force, revision=revision)
        before = [] if kv is None or ops else _decode(kv, store.HISTORY_LIST)
        after = store.record(before, doc.groups[gid], limit=self.history_limit)
        if after is not before:
            ops.append(etcd.Put(self.history_key(gid),
                                store.encode(store.encode_history(after))))
        return ops

    async def save_state(self, gid: group.ID, state: store.State | None, *,
                         force: bool = False) -> None:
        encoded = store.check_json(gid, state)
        key = self.state_key(gid)
        store.require_token(self._token, action=f"write etcd key {key!r}")
        async with self._lock:
            found = await self.client.get(key)
            ops = _aside_if_corrupt(found, store.STATE, force=force, revision=0)
            ops.append(etcd.Delete(key) if encoded is None
                       else etcd.Put(key, store.encode(encoded)))
            guard = [etcd.Compare(key, "MOD", found.mod_revision if found else 0)]
            await self._write(guard, ops, action=f"write etcd key {key!r}")

    async def _write(self, guard: list[etcd.Compare], ops: list[etcd.Op], *,
                     action: str) -> None:
        """One transaction: ``ops`` if we still lead and nobody wrote since we read."""
        token = store.require_token(self._token, action=action)
        fence = _fence(token)
        failure: list[etcd.Op] = [etcd.Get(token.key)] if token else []
        failure += [etcd.Get(c.key) for c in guard]
        done = await self.client.txn(fence + guard, ops, failure, idempotent=True)
        if done.succeeded:
            return
        if token is not None and not _still_holds(token, _only(done.ranges[0])):
            raise errors.NotLeaderError(
                f"cannot {action}: leadership lost (leader key {token.key!r} no longer has "
                f"create revision {token.generation} and lease {token.lease})")
        guarded = done.ranges[1:] if token is not None else done.ranges
        now = {c.key: _only(found) for c, found in zip(guard, guarded, strict=True)}
        if now and all(_holds_result(now[key], ops, key) for key in now):
            return  # a retry of a write that had landed: what we wrote is there
        raise errors.ConflictError(f"cannot {action}: it changed since we read it; retry")


def _holds_result(kv: etcd.KeyValue | None, ops: list[etcd.Op], key: str) -> bool:
    """Whether ``kv`` is what ``ops`` leave at ``key`` (the last put or delete wins)."""
    writes = [op for op in ops if isinstance(op, etcd.Put | etcd.Delete) and op.key == key]
    if not writes:
        return False
    last = writes[-1]
    if isinstance(last, etcd.Delete):
        return kv is None
    return kv is not None and kv.value == last.value


def _fence(token: leader.Token | None) -> list[etcd.Compare]:
    if token is None:
        return []
    if not token.key:
        raise errors.InvalidError("etcd store: the leadership token is not an etcd token "
                                  "(it names no leader key); use etcd leadership")
    return [etcd.Compare(token.key, "CREATE", token.generation),
            etcd.Compare(token.key, "LEASE", token.lease)]


def _still_holds(token: leader.Token, kv: etcd.KeyValue | None) -> bool:
    return kv is not None and kv.create_revision == token.generation and kv.lease == token.lease


def _only(kvs: list[etcd.KeyValue]) -> etcd.KeyValue | None:
    return kvs[0] if kvs else None


def _source(kv: etcd.KeyValue) -> str:
    return f"etcd key {kv.key!r}"


def _decode(kv: etcd.KeyValue, adapter: pydantic.TypeAdapter[Any]) -> Any:
    return store.decode(kv.value, adapter, source=_source(kv))


def _aside_if_corrupt(kv: etcd.KeyValue | None, adapter: pydantic.TypeAdapter[Any], *,
                      force: bool, revision: int) -> list[etcd.Op]:
    """Nothing when ``kv`` is absent or parses. A corrupt value is refused, or with
    ``force`` copied aside to ``<key>.corrupt-<revision>`` in the same transaction."""
    if kv is None:
        return []
    try:
        _decode(kv, adapter)
    except errors.InvalidError as e:
        if not force:
            raise errors.InvalidError(
                f"{e.message}; refusing to overwrite it (fix it, or save with force=True to "
                f"replace it and keep the bad value aside)", **e.data) from e
        return [etcd.Put(f"{kv.key}.corrupt-{revision or kv.mod_revision}", kv.value)]
    return []
