"""The zookeeper flavor: the Flavor interface over :mod:`.ensemble`, :mod:`.words`,
:mod:`.script` and :mod:`.reconfig`.

The group plugin calls it for each member of an ensemble whose logical IDs are the members'
addresses:

- **Prepare** replaces the Init with :func:`.script.init`: the member starts with the
  ensemble's current membership (asked of the live members; the allocation's list when none
  answers, as at the first commit) plus itself. A member that is not in that membership yet
  (a new logical ID, or one drained for a replacement) is then added with ``reconfig``, once
  it is up and synced, one member at a time and only while the quorum holds (a watch started
  here, and every health probe, try it).
- **Healthy** (``judge``): the member serves as leader or follower (so the ensemble has a
  quorum) and is a voting member of it; a member that is up but not in the ensemble is
  Unhealthy. The reason says which.
- **CanRemove**: a healthy voter may go only while the other healthy voters, less those
  already allowed to go, are still a quorum (``replacing 127.0.0.12 would leave 1 of 3
  voting members``); **Order**: members that do not serve first, the leader last.
- **Startup**: within ``Startup`` of Prepare (the tag ``zookeeper.prepared``), a member that
  is not a voter yet is Unknown (starting), not Unhealthy: v0.5's group plugin abandons a
  rolling update at the first Unhealthy verdict.
- **The super user**: reconfiguration needs it (members check ACLs). Its password is
  ``SuperPassword``, else one derived per group from the flavor's key (:mod:`.secret`).
- **Drain** removes the member from the ensemble (``reconfig``), so that the quorum is
  counted among those that stay, and a removed leader hands over at once. It first waits
  (up to ``DRAIN_WAIT``) until the other healthy voters are a quorum without it, which they
  already are when the group asked CanRemove; v0.5's group plugin asks nothing and drains the
  next member without waiting for the last replacement to be healthy. Best effort: a failed
  reconfiguration is logged and the member goes anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import time
from collections.abc import Iterable
from typing import Any

from infrakit import durations, errors
from infrakit.plugins.flavor.zookeeper import ensemble, reconfig, script, secret, words
from infrakit.plugins.flavor.zookeeper import properties as zkprops
from infrakit.spi import flavor, instance

log = logging.getLogger(__name__)

HEALTHY, UNHEALTHY, UNKNOWN = flavor.Health.HEALTHY, flavor.Health.UNHEALTHY, flavor.Health.UNKNOWN

JOIN_WATCH = 600.0
"""How long after Prepare the flavor watches for a new member to add."""
JOIN_POLL = 0.5
"""How often that watch looks."""
REMEMBER = 120.0
"""How long an allowed removal counts as leaving, and a drained member stays drained."""
DRAIN_WAIT = 120.0
"""How long Drain of a healthy voter waits for the others to be a quorum without it (a group
plugin that asks no CanRemove, such as v0.5's, drains the next member as soon as the last
replacement is not Unhealthy)."""


class Plugin:
    """The zookeeper flavor. One membership change at a time (a lock), whichever ensemble.
    ``state`` is the directory of the key the super user's passwords come from."""

    def __init__(self, state: pathlib.Path) -> None:
        self._keeper = secret.Keeper(state)
        self._changing = asyncio.Lock()
        self._drained: dict[str, float] = {}
        """Drained instances by ID (when): never added back."""
        self._leaving: dict[str, tuple[int, float]] = {}
        """Removals allowed and not done, by instance ID: (server, when)."""
        self._watches: dict[str, asyncio.Task[None]] = {}
        """Join watches by logical ID."""
        self._last: ensemble.Membership | None = None
        """The newest membership seen: where to look when the list does not say."""

    async def close(self) -> None:
        """Stop the join watches."""
        for task in self._watches.values():
            task.cancel()
        for task in list(self._watches.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Flavor ------------------------------------------------------------------------------

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        zkprops.check_allocation(zkprops.parse(properties), allocation)

    async def prepare(self, properties: Any, spec: instance.Spec,
                      allocation: flavor.AllocationMethod, index: flavor.Index) -> instance.Spec:
        props = zkprops.parse(properties)
        lids = zkprops.check_allocation(props, allocation)
        lid = zkprops.logical_id(spec)
        if lid not in lids:
            raise errors.InvalidError(f"LogicalID: {lid} is not in Allocation.LogicalIDs",
                                      field="LogicalID")
        me = _server(props, lid)
        group = spec.tags.get(zkprops.GROUP_TAG) or str(index.group)
        password = await self._password(props, group)
        current, _ = await self._observe(props, lids)
        if current is None:
            membership = ensemble.Membership({s.id: s for s in (_server(props, x) for x in lids)})
        else:
            membership = current.with_server(me)
            if me.id not in {voter.id for voter in current.voters}:
                self._watch(props, me, lid=lid, password=password)
        init = script.init(props, lid=lid, server=me.id, membership=membership,
                           password=password)
        tags = {**spec.tags, zkprops.PREPARED_TAG: str(int(time.time()))}
        return spec.model_copy(update={"init": init, "tags": tags})

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Healthy with the reason; a member up but not in the ensemble is added if it may be.
        Within its startup window, a member not serving as a voter yet is Unknown."""
        props = zkprops.parse(properties)
        verdict = await self._judge(props, inst)
        age = zkprops.age(inst, now=time.time())
        if (verdict.health != UNHEALTHY or age is None or not 0 <= age < props.startup
                or self._is_drained(str(inst.id))):
            return verdict
        return flavor.Verdict(UNKNOWN, f"starting ({durations.format_duration(age)} of "
                                       f"{durations.format_duration(props.startup)}): "
                                       f"{verdict.reason}")

    async def _judge(self, props: zkprops.Properties,
                     inst: instance.Description) -> flavor.Verdict:
        try:
            me = _server(props, zkprops.logical_id(inst))
        except errors.InvalidError as exc:
            return flavor.Verdict(UNKNOWN, exc.message)
        seen = await words.status(me.host, me.client_port)
        self._note(seen.membership)
        if seen.voting:
            return flavor.Verdict(HEALTHY, _serving(seen))
        if seen.error:
            return flavor.Verdict(UNHEALTHY, f"{seen.address}: {seen.error}")
        if seen.mode != "follower":
            return flavor.Verdict(UNHEALTHY, f"{seen.address}: serves as {seen.mode or '?'}, "
                                             "not as a voting member")
        if self._is_drained(str(inst.id)):
            return flavor.Verdict(UNHEALTHY, f"{seen.address}: removed from the ensemble")
        password = await self._password(props, inst.tags.get(zkprops.GROUP_TAG, ""))
        joined, why = await self._join(props, me, password=password)
        if joined:
            return flavor.Verdict(HEALTHY, f"{seen.address}: joined the ensemble as server "
                                           f"{me.id}")
        return flavor.Verdict(UNHEALTHY, f"{seen.address}: up but not a voting member of the "
                                         f"ensemble ({why})")

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        """Remove the member from the ensemble (best effort), and never add it back."""
        props = zkprops.parse(properties)
        lid = zkprops.logical_id(inst)
        me = _server(props, lid)
        password = await self._password(props, inst.tags.get(zkprops.GROUP_TAG, ""))
        self._drained[str(inst.id)] = time.monotonic()
        watch = self._watches.pop(lid, None)
        if watch is not None:
            watch.cancel()
        await self._until_removable(props, lid, me)
        async with self._changing:
            for attempt in range(2):
                membership, _ = await self._observe(props, [lid])
                if membership is None or me.id not in membership.servers:
                    return
                if len(membership.voters) <= 1:
                    log.info("drain %s: server %d is the last voter; left as it is", lid, me.id)
                    return
                try:
                    await reconfig.remove(membership, me.id, password=password)
                except errors.TemporaryError as exc:
                    log.warning("drain %s (attempt %d): %s", lid, attempt + 1, exc.message)
                    continue
                return

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        props = zkprops.parse(properties)
        if not inst.logical_id:
            return flavor.Removal(True)
        lid = str(inst.logical_id)
        me = _server(props, lid)
        membership, seen = await self._observe(props, _lids(members))
        healthy = [status.me for status in seen if status.voting and status.me is not None]
        now = time.monotonic()
        present = {str(member.id) for member in members}
        self._leaving = {iid: (server, when) for iid, (server, when) in self._leaving.items()
                         if iid in present and now - when < REMEMBER}
        leaving = [server for iid, (server, _) in self._leaving.items() if iid != str(inst.id)]
        decision = ensemble.removal(lid, me.id, membership=membership, healthy=healthy,
                                    leaving=leaving)
        if decision.allowed and me.id in healthy:
            self._leaving[str(inst.id)] = (me.id, now)
        return flavor.Removal(decision.allowed, decision.reason)

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        props = zkprops.parse(properties)
        named = [member for member in members if member.logical_id]
        seen = await words.statuses([(str(m.logical_id), props.client_port) for m in named])
        modes = {str(member.id): status.mode for member, status in zip(named, seen, strict=True)}
        ranked = ensemble.order([str(member.id) for member in named], modes)
        return [instance.ID(iid) for iid in ranked]

    # Membership --------------------------------------------------------------------------

    async def _observe(self, props: zkprops.Properties, lids: Iterable[str]
                       ) -> tuple[ensemble.Membership | None, list[words.Status]]:
        """The newest membership the serving members follow (looking also at the voters they
        name that ``lids`` left out), and what each said; None when no member serves."""
        targets = {(lid, props.client_port) for lid in lids}
        if self._last is not None:
            targets |= {(v.host, v.client_port) for v in self._last.voters}
        seen = await words.statuses(sorted(targets))
        membership = ensemble.newest(s.membership for s in seen if s.serving)
        if membership is not None:
            more = {(v.host, v.client_port) for v in membership.voters} - targets
            if more:
                seen += await words.statuses(sorted(more))
                membership = ensemble.newest(s.membership for s in seen if s.serving)
        self._note(membership)
        return membership, seen

    def _note(self, membership: ensemble.Membership | None) -> None:
        if membership is not None and (self._last is None
                                       or membership.version >= self._last.version):
            self._last = membership

    async def _until_removable(self, props: zkprops.Properties, lid: str,
                               me: ensemble.Server) -> None:
        """Wait, up to ``DRAIN_WAIT``, until removing ``me`` keeps a quorum (at once when it
        does already). Not under the lock: the replacement that makes the quorum joins under
        it meanwhile."""
        deadline = time.monotonic() + DRAIN_WAIT
        said = ""
        while True:
            membership, seen = await self._observe(props, [lid])
            healthy = [status.me for status in seen if status.voting and status.me is not None]
            decision = ensemble.removal(lid, me.id, membership=membership, healthy=healthy)
            if decision.allowed:
                return
            if time.monotonic() >= deadline:
                log.warning("drain %s: %s; draining anyway after %gs", lid, decision.reason,
                            DRAIN_WAIT)
                return
            if decision.reason != said:
                log.info("drain %s waits: %s", lid, decision.reason)
                said = decision.reason
            await asyncio.sleep(JOIN_POLL)

    async def _password(self, props: zkprops.Properties, group: str) -> str:
        """The super user's password of ``group``'s ensemble (the key file is read off the
        event loop, once)."""
        if props.super_password is not None:
            return props.super_password.get_secret_value()
        return await asyncio.to_thread(self._keeper.password, group)

    async def _join(self, props: zkprops.Properties, me: ensemble.Server, *,
                    password: str) -> tuple[bool, str]:
        """Add ``me`` (up, following, not voting) to the ensemble if the quorum holds; whether
        it is a voter now, and why not."""
        async with self._changing:
            seen = await words.status(me.host, me.client_port)
            if seen.voting:
                return True, ""
            if seen.mode != "follower":
                return False, seen.error or f"serves as {seen.mode or '?'}"
            # A member outside the ensemble may follow an older membership than the voters:
            # ask them, so that the change is made against the newest version.
            membership, found = await self._observe(props, [me.host])
            if membership is None:
                return False, "no voting member answers"
            if me.id in {voter.id for voter in membership.voters}:
                return False, "added; catching up"
            healthy = [s.me for s in found if s.voting and s.me is not None]
            if not ensemble.can_join(membership, healthy=healthy):
                return False, (f"adding it now would not keep a quorum: {len(set(healthy))} of "
                               f"{len(membership.voters)} voting members serve")
            try:
                await reconfig.add(membership, me, password=password)
            except errors.TemporaryError as exc:
                log.info("join of server %d: %s", me.id, exc.message)
            seen = await words.status(me.host, me.client_port)
            self._note(seen.membership)
            return seen.voting, "" if seen.voting else "reconfig did not add it yet"

    def _watch(self, props: zkprops.Properties, me: ensemble.Server, *, lid: str,
               password: str) -> None:
        """Add the member once it is up and synced (a member nobody probes joins too)."""
        old = self._watches.pop(lid, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._watching(props, me, password))
        self._watches[lid] = task
        task.add_done_callback(lambda done: self._forget(lid, done))

    async def _watching(self, props: zkprops.Properties, me: ensemble.Server,
                        password: str) -> None:
        deadline = time.monotonic() + JOIN_WATCH
        while time.monotonic() < deadline:
            await asyncio.sleep(JOIN_POLL)
            seen = await words.status(me.host, me.client_port)
            if seen.voting:
                return
            if seen.mode != "follower":
                continue
            if (await self._join(props, me, password=password))[0]:
                return
        log.warning("server %d (%s) did not join the ensemble within %gs", me.id, me.host,
                    JOIN_WATCH)

    def _forget(self, lid: str, task: asyncio.Task[None]) -> None:
        if self._watches.get(lid) is task:
            del self._watches[lid]
        if not task.cancelled() and task.exception() is not None:
            log.warning("join watch of %s failed: %s", lid, task.exception())

    def _is_drained(self, iid: str) -> bool:
        now = time.monotonic()
        for key in [key for key, when in self._drained.items() if now - when > REMEMBER]:
            del self._drained[key]
        return iid in self._drained


def _server(props: zkprops.Properties, lid: str) -> ensemble.Server:
    return ensemble.Server(zkprops.server_id(props, lid), lid, props.peer_port,
                           props.election_port, props.client_port)


def _lids(members: Iterable[instance.Description]) -> list[str]:
    return [str(member.logical_id) for member in members if member.logical_id]


def _serving(seen: words.Status) -> str:
    voters = len(seen.membership.voters) if seen.membership is not None else 0
    return f"{seen.address}: {seen.mode} of {voters} voting members"
