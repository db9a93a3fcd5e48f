"""The reconcile loop of one group: observe, decide, act, report; every poll or when woken.

One reconcile lists the group (one DescribeInstances by its tag), adopts ``bootstrap``
members, probes health where due, asks :func:`infrakit.group.decide.decide` what to do,
starts the creations and removals in the background (bounded), and publishes the status.
Work in flight is remembered (``creating``, ``removing``) and so are its effects until a
listing shows them (``expected_new``, ``expected_gone``), so a slow or eventually
consistent instance plugin never causes a second create or destroy.

The controller owns one supervisor per committed group and calls it; nothing else does.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import operator
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from infrakit import durations, errors
from infrakit.group import actions, backoff, clock, decide, health, membership, rolling, tags
from infrakit.group import status as status_
from infrakit.group.target import Target, resized
from infrakit.spi import flavor, group, instance

log = logging.getLogger(__name__)

OnState = Callable[[group.ID, rolling.UpdateState | None], Awaitable[None]]
"""Persists a group's rolling-update state (``None``: no update in flight)."""

PROBE_TIMEOUT = 10.0
"""A Flavor.Healthy call that takes longer counts as Unknown."""
WORKERS = 256
"""Operations one batch runs at once when ``max_parallel`` sets no limit (bounds memory)."""
BUSY_POLLS = 10
"""While creations or removals are in flight, reconcile every this many poll intervals."""

T = TypeVar("T")


class Supervisor:
    """Keeps one group at its declared state."""

    def __init__(self, target: Target, *, plugins: actions.Plugins, source: clock.Clock,
                 poll_interval: float, limiter: asyncio.Semaphore | None, workers: int,
                 on_state: OnState | None, rng: random.Random,
                 update: rolling.UpdateState | None = None) -> None:
        self.target = target
        self.plugins = plugins
        self.clock = source
        self.poll_interval = poll_interval
        self.update = update if update is not None and update.target == target.sha else None
        self.breaker = backoff.Breaker(target.props.provision, rng=rng)
        self.book = health.Book()
        self.recorder = status_.Recorder(target.gid, source)
        self.first_seen: dict[str, float] = {}
        self.creating: dict[int, instance.LogicalID | None] = {}
        self.removing: set[str] = set()
        self.doomed: set[str] = set()
        """Members DestroyInstances is removing: counted, but never chosen by a decision."""
        self.expected_new: dict[str, tuple[float, instance.Description]] = {}
        self.expected_gone: dict[str, float] = {}
        self.destroying = False
        self._limiter = limiter
        self._workers = workers
        self._on_state = on_state
        self._persisting = asyncio.Lock()
        self._update_since = source.monotonic()
        self._tokens = itertools.count()
        self._sequence = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._last: decide.Decision | None = None
        self._last_ids: frozenset[str] = frozenset()
        self._last_target: Target | None = None
        self._last_listed: Sequence[instance.Description] = ()
        self._holds: list[str] = []
        self._error: str | None = None
        self._members = 0
        self._phase = (status_.Phase.CONVERGING, "starting")

    @property
    def gid(self) -> group.ID:
        return self.target.gid

    # Lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Begin reconciling (at once, then every poll)."""
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=f"group {self.gid}")

    async def stop(self) -> None:
        """Stop reconciling and cancel the work in flight.

        Cancelling is safe: members are found by their tags, so a provision that completes
        anyway is a member the next reconcile (of this or another leader) sees.
        """
        self._stopping = True
        tasks = [*self._batches, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    def wake(self) -> None:
        """Reconcile now instead of at the next poll."""
        self._wake.set()

    async def retarget(self, target: Target, *, resume: rolling.UpdateState | None) -> None:
        """A new commit: plan from ``target`` from now on; a new config starts a new update."""
        previous, self.target = self.target, target
        before = self.update
        if target.spec != previous.spec:
            self.breaker.reset(target.props.provision)
        if resume is not None and resume.target == target.sha:
            self._start_update(resume)
        elif target.sha != previous.sha:
            grows = target.props.logical_ids is None and target.props.size > previous.props.size
            self._start_update(rolling.UpdateState(
                target=target.sha, hold_size=previous.props.size if grows else None))
        self._last = None
        self.wake()
        if self.update != before:
            await self._persist()

    def _start_update(self, update: rolling.UpdateState) -> None:
        self.update = update
        self._update_since = self.clock.monotonic()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.reconcile()
                self._error = None
            except Exception as err:  # a daemon outlives any one failed reconcile
                log.exception("group %s: reconcile failed", self.gid)
                self._error = f"could not reconcile: {err}"
                self.recorder.add("error", self._error)
            if not self._stopping:
                await self._until_next_reconcile()

    async def _until_next_reconcile(self) -> None:
        """Wait for a wake-up or the next poll; skip polls (up to ``BUSY_POLLS``) while
        creations or removals are in flight: their end wakes the loop, and a reconcile
        meanwhile lists every member again only to find the work still going (at 10,000
        members those listings were a tenth of the group's CPU while it converged)."""
        for _ in range(BUSY_POLLS):
            if await clock.wait_event(self.clock, self._wake, self.poll_interval):
                return
            if not self._batches:
                return

    # One reconcile ---------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Observe, decide, act, report."""
        target = self.target
        listed = await actions.list_members(self.plugins, target.gid, target.props)
        if self._unchanged(target, listed):
            return
        listed = await self._adopt(target, listed)
        now = self.clock.monotonic()
        view = self._account(target, listed, now)
        await self._probe(target, view, now)
        if target is not self.target or self._stopping:
            return  # a commit arrived meanwhile: decide from the new spec, at once
        decision = decide.decide(target, view, self.update, now=now,
                                 allowance=self.breaker.allowance(now),
                                 update_since=self._update_since)
        before, self.update = self.update, decision.update
        if decision.update is not None and (before is None or before.target != target.sha):
            self._update_since = now  # an update found by looking (not by a commit) starts now
        self._execute(target, decision)
        self._publish(target, view, decision, listed, before=before)
        if decision.update != before:
            await self._persist()

    def _unchanged(self, target: Target, listed: Sequence[instance.Description]) -> bool:
        """True when deciding again would decide the same: the last reconcile found the
        group converged, for this very spec, with these very members (the same objects: the
        RPC layer reuses an unchanged answer), nothing is in flight, expected, updating or
        due a probe. At 10,000 members this spares 70% of a steady poll's CPU."""
        last = self._last_listed
        return (self._last is not None and self._last.converged and target is self._last_target
                and self._error is None and self.update is None
                and target.props.health.interval <= 0
                and not (self.creating or self.removing or self.doomed or self._batches
                         or self.expected_new or self.expected_gone)
                and len(listed) == len(last) and all(map(operator.is_, listed, last)))

    async def _adopt(self, target: Target,
                     listed: list[instance.Description]) -> list[instance.Description]:
        """Relabel ``bootstrap`` members with the current hash."""
        key, value = tags.CONFIG_SHA, tags.BOOTSTRAP
        strays = [m for m in listed if m.tags.get(key) == value]
        if not strays:
            return listed
        plugin = self.plugins.instance(target.props.instance.plugin)
        adopted: dict[str, instance.Description] = {}

        async def adopt(member: instance.Description) -> None:
            try:
                await plugin.label(member.id, {tags.CONFIG_SHA: target.sha})
            except Exception as err:
                self.recorder.add("error", f"could not adopt {member.id}: {err}",
                                  instance=member.id)
                return
            adopted[member.id] = member.model_copy(
                update={"tags": {**member.tags, tags.CONFIG_SHA: target.sha}})
            self.recorder.add("adopted", f"adopted {member.id} (tagged bootstrap) with "
                              f"config {target.sha}", instance=member.id)

        await self._bounded([functools.partial(adopt, m) for m in strays])
        return [adopted.get(m.id, m) for m in listed]

    def _account(self, target: Target, listed: Sequence[instance.Description],
                 now: float) -> decide.View:
        """What is there, net of the work in flight and of its effects not yet listed."""
        ttl = max(3 * self.poll_interval, 10.0)
        observed: dict[str, instance.Description] = {m.id: m for m in listed}
        for iid, (when, _) in list(self.expected_new.items()):
            if iid in observed or now - when > ttl:
                del self.expected_new[iid]
        for iid, when in list(self.expected_gone.items()):
            if iid not in observed or now - when > ttl:
                del self.expected_gone[iid]
        members = dict(observed)
        for going in (self.removing | self.expected_gone.keys()) & members.keys():
            del members[going]
        unobserved = frozenset(self.expected_new)
        members.update((iid, m) for iid, (_, m) in self.expected_new.items())
        # Set operations, not loops: this runs over every member at every poll.
        self.first_seen.update(dict.fromkeys(members.keys() - self.first_seen.keys(), now))
        for gone in self.first_seen.keys() - members.keys() - self.removing:
            del self.first_seen[gone]
        self.book.keep_only(members)
        return decide.View(members=members, unobserved=unobserved,
                           locked=unobserved | self.doomed, first_seen=self.first_seen,
                           pending=list(self.creating.values()),
                           removing=len(self.removing), book=self.book)

    async def _probe(self, target: Target, view: decide.View, now: float) -> None:
        """Ask Flavor.Healthy of members due a probe, and of new members an update waits on."""
        interval = target.props.health.interval
        gate = self.update is not None and self.update.target == target.sha \
            and not self.update.aborted
        if not gate and interval <= 0:
            return
        done = set(self.update.done) if gate and self.update is not None else set()
        due = [m for m in view.members.values() if m.id not in view.unobserved and (
            (gate and m.id not in done and tags.is_current(m, target.sha))
            or (interval > 0 and self.book.due(m.id, now, interval)))]
        if not due:
            return
        plugin = self.plugins.flavor(target.props.flavor.plugin)
        props = target.props.flavor.properties

        async def probe(member: instance.Description) -> None:
            try:
                verdict = await clock.within(self.clock, PROBE_TIMEOUT,
                                             plugin.healthy(props, member))
            except Exception as err:  # a failed probe says nothing: Unknown
                log.debug("group %s: probe of %s failed: %s", self.gid, member.id, err)
                verdict = flavor.Health.UNKNOWN
            self.book.record(member.id, flavor.Health(verdict), now)

        await self._bounded([functools.partial(probe, m) for m in due])

    def _execute(self, target: Target, decision: decide.Decision) -> None:
        """Start the decided creations and removals in the background."""
        plugins = actions.memoized(self.plugins)
        jobs: list[Callable[[], Awaitable[bool]]] = []
        ticket = self.breaker.ticket()  # failures of one batch count once
        for removal in decision.removals:
            self.removing.add(removal.member.id)
            jobs.append(functools.partial(self._remove, target, removal, plugins=plugins))
        for create in decision.creates:
            token = next(self._tokens)
            self.creating[token] = create.logical_id
            jobs.append(functools.partial(self._create, target, create, token, ticket,
                                          plugins=plugins))
        if jobs:
            batch = asyncio.create_task(self._batch(jobs))
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)

    async def _batch(self, jobs: Sequence[Callable[[], Awaitable[bool]]]) -> None:
        if any(await self._bounded(jobs)):
            self.wake()  # see the progress at once; failures wait for the next poll

    async def _create(self, target: Target, create: membership.Create, token: int,
                      ticket: int, *, plugins: actions.Plugins) -> bool:
        try:
            if target is not self.target or self._stopping:
                return False  # planned for a spec that is no longer the group's
            try:
                async with self._limit():
                    iid = await actions.create(plugins, target.gid, target.props,
                                               sha=target.sha, logical_id=create.logical_id,
                                               sequence=next(self._sequence))
            except Exception as err:
                wait = self.breaker.failed(ticket, self.clock.monotonic(), str(err))
                self.recorder.add("provision-failed", (
                    f"provision failed ({self.breaker.failures} attempts in a row): {err}; next "
                    f"attempt in {durations.format_duration(wait)}"))
                return False
            self.breaker.succeeded()
            if iid is not None:
                self._expect(target, iid, create.logical_id)
            self.recorder.add("created", f"created {iid} because {create.reason}", instance=iid)
            return True
        finally:
            del self.creating[token]

    def _expect(self, target: Target, iid: str, logical_id: instance.LogicalID | None) -> None:
        now = self.clock.monotonic()
        self.first_seen[iid] = now
        self.expected_new[iid] = (now, instance.Description(
            id=instance.ID(iid), logical_id=logical_id,
            tags={tags.GROUP: target.gid, tags.CONFIG_SHA: target.sha}))

    async def _remove(self, target: Target, removal: membership.Removal, *,
                      plugins: actions.Plugins) -> bool:
        member = removal.member
        try:
            if target is not self.target or self._stopping:
                return False
            async with self._limit():
                if not await self._drain_and_destroy(target, member, plugins=plugins):
                    return False
            self.recorder.add(removal.verb, f"{removal.verb} {member.id} because "
                              f"{removal.reason}", instance=member.id)
            return True
        finally:
            self.removing.discard(member.id)

    async def _drain_and_destroy(self, target: Target, member: instance.Description, *,
                                 plugins: actions.Plugins) -> bool:
        """Drain, then destroy; a failure is recorded and the member stays (to be retried)."""
        try:
            await actions.drain(plugins, target.gid, target.props, member, source=self.clock)
        except Exception as err:
            why = str(err) or type(err).__name__
            self.recorder.add("drain-failed", f"drain of {member.id} failed ({why}); not "
                              "destroyed, will retry", instance=member.id)
            return False
        try:
            await actions.destroy(plugins, target.gid, target.props, member)
        except Exception as err:
            self.recorder.add("destroy-failed", f"destroy of {member.id} failed ({err}); "
                              "will retry", instance=member.id)
            return False
        self.expected_gone[member.id] = self.clock.monotonic()
        return True

    def _limit(self) -> asyncio.Semaphore | _Unlimited:
        return self._limiter if self._limiter is not None else _UNLIMITED

    async def _bounded(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run ``jobs`` with at most ``workers`` at once (jobs handle their own errors)."""
        queue, results = iter(jobs), list[T]()

        async def worker() -> None:
            for job in queue:
                results.append(await job())

        await asyncio.gather(*(worker() for _ in range(min(self._workers, len(jobs)))))
        return results

    # Reporting -----------------------------------------------------------------------

    def _publish(self, target: Target, view: decide.View, decision: decide.Decision,
                 listed: Sequence[instance.Description], *,
                 before: rolling.UpdateState | None) -> None:
        self._last, self._last_target, self._last_listed = decision, target, listed
        self._last_ids = frozenset(m.id for m in listed)
        self._members = len(view.members) + len(view.pending)
        for hold in decision.holds:
            if hold not in self._holds:
                self.recorder.add("holding", hold)
        if decision.update is not None and decision.update.paused and not (
                before is not None and before.paused):
            self.recorder.add("paused", decision.update.reason)
        self._holds = decision.holds
        self._phase = self._phase_of(target, decision)

    def _phase_of(self, target: Target,
                  decision: decide.Decision) -> tuple[status_.Phase, str]:
        phase, update, breaker = status_.Phase, decision.update, self.breaker
        if breaker.failing:
            return phase.PROVISION_FAILING, (
                f"{breaker.failures} provision attempts failed in a row ({breaker.last_error}); "
                f"retrying every {durations.format_duration(breaker.policy.backoff_cap)}")
        if update is not None and update.paused:
            return phase.PAUSED, update.reason
        if update is not None and update.aborted:
            return phase.ABORTED, update.reason
        if decision.holds:
            return phase.HOLDING, "; ".join(decision.holds)
        if update is not None:
            return phase.UPDATING, (f"rolling update to {update.target}: "
                                    f"{len(update.done)} members on it are healthy")
        if decision.converged:
            return phase.CONVERGED, f"{target.props.size} members match the spec"
        if decision.deferred:
            return phase.CONVERGING, (f"{decision.deferred} creations wait for the provisioning "
                                      f"backoff ({breaker.failures} failed attempts in a row)")
        return phase.CONVERGING, (f"{self._members} of {target.props.size} members; creating "
                                  f"{len(self.creating)}, removing {len(self.removing)}")

    def converged(self) -> bool:
        """The last reconcile found nothing to do, and nothing is in flight since."""
        return (self._last is not None and self._last.converged and not self.creating
                and not self.removing and not self.doomed and not self._batches
                and self._error is None
                and not self.destroying)

    def status(self) -> status_.Status:
        """The group's status now."""
        phase, reason = self._phase
        update, converged = self.update, self.converged()
        if self.destroying:
            phase, reason = status_.Phase.DESTROYING, "DestroyGroup is removing every member"
        elif self._error is not None:
            reason = self._error
        elif update is not None and (update.paused or update.aborted):
            phase = status_.Phase.PAUSED if update.paused else status_.Phase.ABORTED
            reason = update.reason
        elif self._last is None:
            phase, reason = status_.Phase.CONVERGING, "planning the committed spec"
        elif phase == status_.Phase.CONVERGED and not converged:
            phase, reason = status_.Phase.CONVERGING, "acting on the last reconcile"
        return status_.Status(
            id=self.gid, phase=phase, reason=reason, size=self.target.props.size,
            members=self._members, converged=converged,
            config_sha=self.target.sha, update=self.update,
            provision_failures=self.breaker.failures, actions=self.recorder.recent())

    async def describe(self) -> group.Description:
        """The members now (a fresh listing), Converged, and the status (ext)."""
        listed = await actions.list_members(self.plugins, self.gid, self.target.props)
        same = frozenset(m.id for m in listed) == self._last_ids
        return group.Description(instances=listed, converged=self.converged() and same,
                                 status=self.status().to_wire())

    # Control ---------------------------------------------------------------------------

    async def pause(self) -> None:
        """Replace no more old members until :meth:`resume`."""
        update = self._need_update("pause")
        self.update = update.model_copy(update={"paused": True, "reason": "paused by request"})
        self.recorder.add("paused", "paused the rolling update by request")
        await self._persist()

    async def resume(self) -> None:
        """Continue a paused or aborted update (HealthTimeout counts afresh)."""
        update = self._need_update("resume")
        self._start_update(update.model_copy(
            update={"paused": False, "aborted": False, "reason": ""}))
        self.recorder.add("resumed", "resumed the rolling update by request")
        self.wake()
        await self._persist()

    async def abort(self) -> None:
        """Give the update up: members keep their configs until the next commit."""
        update = self._need_update("abort")
        self.update = update.model_copy(update={
            "aborted": True, "paused": False,
            "reason": f"update to {update.target} aborted by request; members keep their "
                      "config until the next commit"})
        self.recorder.add("aborted", "aborted the rolling update by request")
        self.wake()
        await self._persist()

    def _need_update(self, verb: str) -> rolling.UpdateState:
        if self.update is None:
            raise errors.ConflictError(f"cannot {verb}: group '{self.gid}' has no rolling "
                                       "update in flight", group=self.gid)
        return self.update

    async def _persist(self) -> None:
        if self._on_state is None:
            return
        async with self._persisting:
            try:
                await self._on_state(self.gid, self.update)
            except Exception as err:  # persisting is best effort; the update goes on
                log.exception("group %s: on_state failed", self.gid)
                self.recorder.add("error", f"could not persist the update state: {err}")

    # Explicit destroys -----------------------------------------------------------------

    async def destroy_members(self, ids: Sequence[str]) -> None:
        """DestroyInstances: drain and destroy these members (protected ones too).

        A scaled group's size goes down by one with each member destroyed, so the group
        does not replace them; a pet is recreated for its logical ID.
        """
        listed = await actions.list_members(self.plugins, self.gid, self.target.props)
        by_id: dict[str, instance.Description] = {m.id: m for m in listed}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise errors.NotFoundError(f"not members of group '{self.gid}': "
                                       f"{', '.join(unknown)}", group=self.gid)
        chosen = [by_id[i] for i in dict.fromkeys(ids)]
        self.doomed.update(m.id for m in chosen)
        failed: list[str] = []
        plugins = actions.memoized(self.plugins)

        async def one(member: instance.Description) -> None:
            try:
                if not await self._drain_and_destroy(self.target, member, plugins=plugins):
                    failed.append(member.id)
                    return
                if self.target.props.logical_ids is None:
                    self.target = resized(self.target, max(0, self.target.props.size - 1))
                self.recorder.add("destroyed", f"destroyed {member.id} because "
                                  "DestroyInstances asked", instance=member.id)
            finally:
                self.doomed.discard(member.id)

        await self._bounded([functools.partial(one, m) for m in chosen])
        self.wake()
        if failed:
            raise errors.TemporaryError(f"could not destroy {', '.join(failed)} of group "
                                        f"'{self.gid}' (see its status)", group=self.gid)

    async def destroy_all(self) -> None:
        """DestroyGroup: stop, then drain and destroy every member before returning.

        Refuses (ConflictError, nothing destroyed) while members are protected. On a
        failure the group stays ``Destroying`` and unsupervised; DestroyGroup again retries.
        """
        protect = self.target.props.scale.protect_tag
        listed = await actions.list_members(self.plugins, self.gid, self.target.props)
        shielded = sorted(m.id for m in listed if tags.protected(m, protect))
        if shielded:
            raise errors.ConflictError(
                f"group '{self.gid}' has protected members ({', '.join(shielded)}): destroy "
                f"them with DestroyInstances or remove their {protect} tag first",
                group=self.gid)
        await self.stop()
        self.destroying = True
        listed = await actions.list_members(self.plugins, self.gid, self.target.props)
        failed: list[str] = []
        plugins = actions.memoized(self.plugins)

        async def one(member: instance.Description) -> None:
            if tags.protected(member, protect) or not await self._drain_and_destroy(
                    self.target, member, plugins=plugins):
                failed.append(member.id)
            else:
                self.recorder.add("destroyed", f"destroyed {member.id} because DestroyGroup "
                                  "asked", instance=member.id)

        await self._bounded([functools.partial(one, m) for m in listed])
        if failed:
            raise errors.TemporaryError(
                f"DestroyGroup '{self.gid}': could not destroy {', '.join(sorted(failed))} "
                "(see its status); call DestroyGroup again to retry", group=self.gid)


class _Unlimited:
    """A no-op async context manager standing in for a semaphore."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


_UNLIMITED = _Unlimited()
