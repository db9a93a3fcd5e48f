"""etcd leadership (multi-host): a real election on one key tied to a lease.

The manager uses it with ``etcd --endpoint URL``. Each contender grants a lease (TTL 5 s
by default) and runs one transaction: "if the leader key's create revision is 0, put it
with my lease". The winner leads and keeps the lease alive every TTL/3; the others watch
the key and try again the moment it is deleted. Since the key is tied to the lease, a
leader that dies loses the key when its lease expires, and no one else can lead before.

The key's value names the leader, ``{"name", "since"}``, and its ``url`` when the manager
listens on TCP (``--listen``): a standby on another host forwards calls there
(:mod:`.forward`).

Fencing: the :class:`leader.Token` is the key's create revision and the lease ID; the
etcd store makes every write conditional on both (:mod:`.store_etcd`).

Several etcd members: a keep-alive that gets no answer from one member in time moves to
the next (:mod:`.etcd`); attempts are short (an eighth of the time left before the token
would lapse) and go round the members until one answers, so a hung member, even etcd's
raft leader, does not cost the lease when TTL/2 outlasts etcd's re-election (about 1-2 s
with etcd's default 1 s election timeout: use a TTL of 5 s). The campaign txn may be
sent again to another member too: its ``CREATE == 0`` compare makes a second
application fail, and a failure that names our own lease is recognised as our win.

A leader stops acting at once (the loss is signalled before anything else) when a
keep-alive fails or says the lease is gone, or when its key is deleted or replaced. Its
token also lapses by itself a little before the lease could expire, should the loop
that renews it be held up. :meth:`EtcdLeadership.stop` signals loss, then revokes the
lease so the next leader need not wait out the TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

from infrakit import errors
from infrakit.manager import etcd, leader

log = logging.getLogger(__name__)

KEY = "infrakit/leader"
"""The leader key unless told otherwise."""

DEFAULT_TTL = 5

MIN_ATTEMPT = 0.2
"""Seconds: the shortest a keep-alive attempt on one member may be given."""


class EtcdLeadership(leader.Base):
    """``EtcdLeadership(client, name, key=KEY, ttl=5)``: campaign on ``key``."""

    def __init__(self, client: etcd.Client, name: str, *, key: str = KEY,
                 ttl: int = DEFAULT_TTL, url: str = "") -> None:
        """``url``: where this manager answers on TCP, published with its leadership."""
        super().__init__(name)
        self.url = url
        if ttl < 1:
            raise errors.InvalidError(f"ttl: expected whole seconds >= 1, got {ttl}",
                                      field="ttl")
        self.client = client
        self.key = key
        self.ttl = ttl
        self._valid_until = 0.0
        self._lease = 0
        """The lease we lead with, or one to revoke when etcd answers again."""

    async def leader_info(self) -> leader.Info:
        kv = await self.client.get(self.key)
        if kv is None:
            return leader.Info(backend="etcd")
        name, since, url = _parse_value(kv.value)
        ttl = await self.client.time_to_live(kv.lease) if kv.lease else 0
        return leader.Info(name=name, since=since, lease=kv.lease, ttl=max(ttl, 0),
                           backend="etcd", url=url)

    def _still_valid(self) -> bool:
        return time.monotonic() < self._valid_until

    async def _resign(self) -> None:
        await self._revoke()  # deletes the key: the next leader need not wait out the TTL

    # -- the election -----------------------------------------------------------------------

    @property
    def _interval(self) -> float:
        return self.ttl / 3

    async def _run(self) -> None:
        while True:
            try:
                await self._revoke()
                await self._campaign()
            except Exception as e:
                self._lose(f"etcd failed: {e}")
                log.warning("%s: election round failed, retrying: %s", self.name, e)
                await asyncio.sleep(min(1.0, self._interval))

    async def _campaign(self) -> None:
        """One round: lead until loss, or wait until the current leader's key goes."""
        sent = time.monotonic()
        lease = await self.client.grant(self.ttl)
        self._lease = lease.id
        published = {"name": self.name, "since": datetime.now(UTC).isoformat()}
        if self.url:
            published["url"] = self.url
        value = json.dumps(published)
        won = await self.client.txn([etcd.Compare(self.key, "CREATE", 0)],
                                    [etcd.Put(self.key, value.encode(), lease.id)],
                                    [etcd.Get(self.key)], idempotent=True)
        holder = won.ranges[0][0] if won.ranges and won.ranges[0] else None
        if won.succeeded:
            generation = won.revision
        elif holder is not None and holder.lease == lease.id:
            # A member applied our txn but its answer was lost; the retry saw our own key.
            generation = holder.create_revision
        else:
            await self._revoke()
            if holder is not None:
                await self._until_changed(holder.create_revision, start=won.revision + 1)
            return
        token = leader.Token(generation=generation, lease=lease.id, key=self.key)
        self._valid_until = sent + self._validity(lease.ttl)
        self._gain(token, f"won the election on {self.key!r} (lease {lease.id})")
        await self._hold(token, sent=sent)

    def _validity(self, ttl: float) -> float:
        # The server's lease outlives our send time by at least ttl; stop trusting it a
        # sixth earlier. Renewals land by 2/3 ttl, so a healthy leader never lapses.
        return ttl * 5 / 6

    async def _hold(self, token: leader.Token, *, sent: float) -> None:
        """Lead until a keep-alive fails or the key changes; signal the loss first."""
        keep = asyncio.create_task(self._keep_alive(token.lease, sent=sent))
        watch = asyncio.create_task(self._until_changed(token.generation,
                                                        start=token.generation + 1))
        try:
            done, _ = await asyncio.wait({keep, watch}, return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            failure = first.exception()
            if failure is not None:
                self._lose(f"leadership task failed: {failure}")
            elif first is keep:
                self._lose(keep.result())
            else:
                self._lose(f"leader key {self.key!r} was deleted or replaced")
        finally:
            for task in (keep, watch):
                task.cancel()
            await asyncio.gather(keep, watch, return_exceptions=True)

    async def _keep_alive(self, lease: int, *, sent: float) -> str:
        """Renew every TTL/3 (from send times, so replies that come late do not drift);
        returns why the lease can no longer be trusted."""
        while True:
            await asyncio.sleep(max(0.0, sent + self._interval - time.monotonic()))
            sent = time.monotonic()
            try:
                ttl = await self._renew(lease, left=self._valid_until - sent)
            except Exception as e:
                return f"keep-alive of lease {lease} failed: {e}"
            if ttl <= 0:
                return f"lease {lease} expired or was revoked"
            self._valid_until = sent + self._validity(ttl)

    async def _renew(self, lease: int, *, left: float) -> int:
        """One keep-alive, given up when the token lapses (``left`` seconds from now,
        normally TTL/2).

        With one member there is nowhere to move: one attempt, given up at 2/3 of ``left``
        so that the loss is signalled before the token lapses. With several, short attempts
        go round the members until one answers: a hung member costs one attempt, and when
        the hung one is etcd's raft leader the others hold renewals (forwarding them to
        it) until they have elected another, so a later round gets through.
        """
        left = max(left, 0.0)
        if len(self.client.endpoints) == 1:
            return await self.client.keepalive(lease, timeout=max(left * 2 / 3, 0.001))
        attempt = max(left / 8, MIN_ATTEMPT)
        last: Exception | None = None
        try:
            async with asyncio.timeout(left):
                while True:
                    try:
                        return await self.client.keepalive(lease, timeout=attempt)
                    except errors.TemporaryError as e:
                        last = e
                        await asyncio.sleep(attempt / 4)  # every member failed just now
        except TimeoutError as e:
            raise errors.CallTimeout(f"no etcd member renewed it within {left:.2f}s, before "
                                     f"our token lapsed (last: {last or 'no answer'})") from e

    async def _until_changed(self, created: int, *, start: int) -> None:
        """Return once the key no longer has create revision ``created`` (deleted or
        re-created). Survives broken streams and etcd restarts by re-reading the key."""
        while True:
            try:
                async with asyncio.timeout(max(10.0, 2 * self.ttl)):
                    async with self.client.watch(self.key, start_revision=start) as events:
                        async for event in events:
                            if event.type == "DELETE" or event.kv.create_revision != created:
                                return
            except (errors.InfrakitError, TimeoutError) as e:
                log.debug("%s: watch on %r ended: %s", self.name, self.key, e)
            try:
                seen = await self.client.txn([], [etcd.Get(self.key)])
            except errors.InfrakitError as e:
                log.debug("%s: reading %r failed: %s", self.name, self.key, e)
                await asyncio.sleep(self._interval)
                continue
            kv = seen.ranges[0][0] if seen.ranges and seen.ranges[0] else None
            if kv is None or kv.create_revision != created:
                return
            start = seen.revision + 1

    async def _revoke(self) -> None:
        """Revoke our last lease (best effort; it expires anyway)."""
        lease, self._lease = self._lease, 0
        if not lease:
            return
        try:
            await self.client.revoke(lease)
        except errors.InfrakitError as e:
            self._lease = lease  # try again next round
            log.debug("%s: revoking lease %d failed: %s", self.name, lease, e)


def _parse_value(raw: bytes) -> tuple[str, datetime | None, str]:
    """``{"name", "since"[, "url"]}`` as we write it; anything else is shown as the name."""
    try:
        data = json.loads(raw)
        return (str(data["name"]), datetime.fromisoformat(data["since"]),
                str(data.get("url") or ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return raw.decode(errors="replace"), None, ""
