"""The etcd flavor: the Flavor methods (with the optional judge, can_remove and order).

Served by :mod:`.serve`; tests call :class:`Plugin` directly. Prepare and Drain change the
cluster's membership, one at a time per group (a lock each), retrying for
``ReconfigureTimeout`` while etcd refuses a change for now: its strict reconfiguration
check refuses to add or remove a voting member until every member has been connected for
a few seconds, so a removal right after a member started is refused at first.

Each prepared instance carries tags: ``etcd.name``, ``etcd.client-url`` and
``etcd.peer-url`` (its member, as its etcd was started: the properties may have changed
since, a rolling update to new ports) and ``etcd.endpoints`` (the client URLs of the
allocation it was prepared for), so that Drain and Healthy, which see one instance only,
still know where the rest of the cluster is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from infrakit import errors
from infrakit.plugins.flavor.etcd import joining, members, script, settings, verdicts
from infrakit.plugins.flavor.etcd.view import View, describe, observe
from infrakit.spi import flavor, instance

log = logging.getLogger(__name__)

NAME_TAG = "etcd.name"
CLIENT_TAG = "etcd.client-url"
PEER_TAG = "etcd.peer-url"
ENDPOINTS_TAG = "etcd.endpoints"
GROUP_TAG = "infrakit.group"

T = TypeVar("T")

_FIRST_RETRY, _MAX_RETRY = 0.5, 2.0
"""Seconds between attempts at a membership change etcd refused for now (doubling)."""


class Plugin:
    """The etcd flavor; holds a lock per group and where each group's cluster was last
    seen, nothing that a restart could not do without."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._seen: dict[str, list[str]] = {}
        """The client URLs each group's cluster listed when last looked at: where to look
        when the properties changed its ports (a rolling update to new ports)."""

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        settings.parse(properties)
        settings.check_allocation(allocation)

    async def prepare(self, properties: Any, spec: instance.Spec,
                      allocation: flavor.AllocationMethod, index: flavor.Index) -> instance.Spec:
        props = settings.parse(properties)
        known = [settings.address(lid, props) for lid in settings.check_allocation(allocation)]
        me = settings.address(settings.check_logical_id(spec.logical_id), props)
        look = self._looker(index.group, props)
        async with self._lock(index.group):
            state, cluster = await retrying(
                f"adding {me.name} to the cluster", props,
                lambda: _join(me, known=known, look=look, props=props))
        init = script.render(me, state=state, cluster=cluster, props=props,
                             token=props.token or f"infrakit-{index.group or 'etcd'}")
        tags = {**spec.tags, NAME_TAG: me.name, CLIENT_TAG: me.client_url,
                PEER_TAG: me.peer_url, ENDPOINTS_TAG: ",".join(a.client_url for a in known)}
        return spec.model_copy(update={
            "init": f"{spec.init}\n{init}" if spec.init else init, "tags": tags})

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Healthy when the instance's member has started and its cluster has a leader."""
        props = settings.parse(properties)
        if not _usable(inst.logical_id):
            return flavor.Verdict(flavor.Health.UNKNOWN,
                                  f"{inst.id} has no logical ID that names an etcd member")
        me = _address(inst, props)
        async with members.client(me.client_url, timeout=props.timeout) as client:
            ok, said = await members.health(client)
            if not ok:
                return verdicts.health(me, ok=False, said=said, own=None, listed=[])
            try:
                own, (_, listed) = await asyncio.gather(members.status(client),
                                                        members.member_list(client))
            except errors.InfrakitError as exc:
                return flavor.Verdict(flavor.Health.UNHEALTHY, f"{me.name}: {exc.message}")
        return verdicts.health(me, ok=True, said=said, own=own, listed=listed)

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        """Remove the instance's member from the cluster (its leadership moved away first)."""
        props = settings.parse(properties)
        if not _usable(inst.logical_id):
            log.info("drain of %s: no logical ID, so no etcd member to remove", inst.id)
            return
        me = _address(inst, props)
        urls = _endpoints(_tagged(inst), last=me.client_url)
        group = inst.tags.get(GROUP_TAG, "")
        look = self._looker(group, props)
        async with self._lock(group):
            await retrying(f"removing {me.name} from the cluster", props,
                            lambda: _leave(me, urls=urls, look=look, props=props))

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        """Allowed unless it would leave fewer than a quorum of healthy started members, or
        while another member is still joining or catching up."""
        props = settings.parse(properties)
        if not _usable(inst.logical_id):
            return flavor.Removal(allowed=True)
        me = _address(inst, props)
        try:
            view = await self._looker(inst.tags.get(GROUP_TAG, ""), props)(
                _group_urls(members, props, last=me.client_url))
        except errors.TemporaryError as exc:
            return flavor.Removal(allowed=False, reason=f"removing {me.name}: cannot check "
                                  f"the cluster's quorum: {exc.message}")
        return verdicts.removal(view, me)

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        """Members that are not healthy first, then the followers, the raft leader last."""
        props = settings.parse(properties)
        try:
            view = await self._looker(_group_of(members), props)(_group_urls(members, props))
        except errors.TemporaryError as exc:
            log.info("order: no member answers (%s); any order", exc.message)
            return []
        return verdicts.order(view, [verdicts.Candidate(
            id=m.id, address=_address(m, props) if _usable(m.logical_id) else None)
            for m in members])

    def _lock(self, group: str) -> asyncio.Lock:
        return self._locks.setdefault(group, asyncio.Lock())

    def _looker(self, group: str, props: settings.Properties) -> Look:
        """:func:`observe` for ``group``: at the URLs given, then at those its cluster
        listed last time; what it sees is remembered for the next time."""
        async def look(urls: Sequence[str], *, replacing: str = "") -> View:
            # The last URL given stays last: it is the member that may be dead or leaving.
            ordered = [*urls[:-1], *self._seen.get(group, []), *urls[-1:]]
            seen = await observe(_endpoints(ordered, last=ordered[-1] if ordered else ""),
                                 timeout=props.timeout, replacing=replacing)
            self._seen[group] = [url for m in seen.listed for url in m.client_urls]
            return seen
        return look


class Look(Protocol):
    """One look at a group's cluster from the given client URLs (see ``Plugin._looker``);
    the member with the peer URL ``replacing`` is not asked its status."""

    def __call__(self, urls: Sequence[str], *, replacing: str = "") -> Awaitable[View]: ...


async def _join(me: settings.Address, *, known: Sequence[settings.Address], look: Look,
                props: settings.Properties) -> tuple[joining.State, list[tuple[str, str]]]:
    """Prepare's membership change; the state to start in and the initial cluster."""
    others = [a.client_url for a in known if a != me]
    try:
        seen: View | None = await look(_endpoints(others, last=me.client_url),
                                       replacing=me.peer_url)
    except errors.TemporaryError:
        seen = None  # nobody answers: there is no cluster to join yet
    plan = joining.plan(seen, me=me, allocation=known)
    log.info("prepare %s: %s", me.name, plan.why)
    if plan.state != "existing" or seen is None:
        return plan.state, [(a.name, a.peer_url) for a in plan.cluster]
    urls = _endpoints(_client_urls(m for m in seen.listed if me.peer_url not in m.peer_urls),
                      last=me.client_url)
    listed = seen.listed
    async with members.client(urls, timeout=props.timeout) as client:
        for stale in plan.remove:
            log.info("prepare %s: removing its old member %x (%s)", me.name, stale.id,
                     describe(stale))
            await members.remove(client, stale.id)
        if plan.add:
            added, listed = await members.add(client, me.peer_url)
            log.info("prepare %s: added as member %x", me.name, added.id)
        elif plan.remove:
            _, listed = await members.member_list(client)
    return "existing", joining.membership(listed, me=me, known=known)


async def _leave(me: settings.Address, *, urls: Sequence[str], look: Look,
                 props: settings.Properties) -> None:
    """Drain's membership change."""
    try:
        seen = await look(urls)
    except errors.TemporaryError as exc:
        log.warning("drain %s: no member answers (%s); nothing to leave", me.name, exc.message)
        return
    mine = seen.find(me)
    if mine is None:
        log.info("drain %s: not a member of the cluster", me.name)
        return
    if [m.id for m in seen.listed] == [mine.id]:
        log.info("drain %s: the last member; nothing to leave", me.name)
        return
    if mine.id == seen.leader:
        await _hand_over(seen, mine, props=props)
    others = _client_urls(m for m in seen.listed if m.id != mine.id)
    async with members.client(_endpoints(others, last=me.client_url),
                              timeout=props.timeout) as client:
        await members.remove(client, mine.id)
    log.info("drain %s: removed member %x from the cluster", me.name, mine.id)


async def _hand_over(seen: View, leader: members.Member, *,
                     props: settings.Properties) -> None:
    """Move leadership to the most advanced healthy follower before the leader leaves
    (best effort: a leader that leaves on its own costs an election timeout)."""
    followers = [m for m in seen.voters if m.id != leader.id and seen.healthy(m)]
    if not followers:
        return
    heir = max(followers, key=lambda m: seen.statuses[m.id].applied_index)
    try:
        async with members.client(leader.client_urls, timeout=props.timeout) as client:
            await members.move_leader(client, heir.id)
        log.info("drain %s: moved leadership to %s", describe(leader), describe(heir))
    except errors.InfrakitError as exc:
        log.warning("drain %s: could not move leadership to %s: %s", describe(leader),
                    describe(heir), exc.message)


async def retrying(what: str, props: settings.Properties,
                   attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()``, again while etcd refuses the change for now, for at most
    ``ReconfigureTimeout``; then a ``TemporaryError`` saying what etcd said."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + props.reconfigure_timeout
    delay = _FIRST_RETRY
    while True:
        try:
            return await attempt()
        except errors.InfrakitError as exc:
            if not _for_now(exc):
                raise
            if loop.time() + delay > deadline:
                raise errors.TemporaryError(
                    f"{what}: etcd refused it for {props.reconfigure_timeout:g}s: "
                    f"{exc.message} (etcd's strict reconfiguration check refuses membership "
                    "changes until every member has been connected for a few seconds)",
                    delay=delay) from None
            log.info("%s: etcd refused it for now (%s); retrying in %gs, as etcd refuses "
                     "membership changes right after a member started", what, exc.message,
                     delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_RETRY)


def _for_now(exc: errors.InfrakitError) -> bool:
    """A refusal worth another attempt: etcd's strict reconfiguration check, no leader, or
    no answer in time. Each attempt looks at the cluster afresh, so a change that was
    applied although its answer was lost is not made twice."""
    return members.refused_for_now(exc) or isinstance(exc, errors.TemporaryError)


def _address(inst: instance.Description, props: settings.Properties) -> settings.Address:
    """The identity of ``inst``'s member: as Prepare wrote it in its tags (its etcd runs
    with those URLs, whatever the properties say now), else from its logical ID."""
    derived = settings.address(str(inst.logical_id), props)
    return settings.Address(name=inst.tags.get(NAME_TAG, derived.name),
                            client_url=inst.tags.get(CLIENT_TAG, derived.client_url),
                            peer_url=inst.tags.get(PEER_TAG, derived.peer_url))


def _usable(logical_id: str | None) -> bool:
    try:
        settings.check_logical_id(logical_id)
    except errors.InvalidError:
        return False
    return True


def _group_of(group: Iterable[instance.Description]) -> str:
    return next((m.tags[GROUP_TAG] for m in group if GROUP_TAG in m.tags), "")


def _tagged(inst: instance.Description) -> list[str]:
    return [url for url in inst.tags.get(ENDPOINTS_TAG, "").split(",") if url]


def _group_urls(group: Iterable[instance.Description], props: settings.Properties, *,
                last: str = "") -> list[str]:
    """The client URLs of the group's members, and those their tags name."""
    urls = [_address(m, props).client_url for m in group if _usable(m.logical_id)]
    urls += [url for m in group for url in _tagged(m)]
    return _endpoints(urls, last=last)


def _client_urls(listed: Iterable[members.Member]) -> list[str]:
    """The client URLs of the started members among ``listed``."""
    return [url for m in listed if m.started for url in m.client_urls]


def _endpoints(urls: Iterable[str], *, last: str = "") -> list[str]:
    """``urls`` without repeats, ``last`` moved to the end (a member that may be the one
    dead or leaving is asked after the others)."""
    ordered = list(dict.fromkeys(u for u in urls if u and u != last))
    return [*ordered, last] if last else ordered
