"""The reconcile loop of one group: observe, decide, act, report; every poll or when woken.

One reconcile lists the group (one DescribeInstances by its tag), adopts ``bootstrap``
members, probes health where due (:mod:`.probing`), asks
:func:`infrakit.group.decide.decide` what to do, starts the creations and removals in the
background (bounded, :mod:`.jobs`), and publishes the status. Work in flight and its
effects not yet listed live in the in-flight ledger (:mod:`.inflight`), so a slow or
eventually consistent instance plugin never causes a second create or destroy. The phase
is judged by the pure :mod:`.phase`; removing members on request (DestroyInstances,
DestroyGroup) is :mod:`.destroying`.

Before each removal it decided (scale-in, rolling update, unhealthy, duplicate) the
supervisor asks the flavor whether the member may go now (:mod:`.gate`), one member at a
time with the member list as it is then; a member refused waits, with its reason in the
status, and is asked again at the next reconcile. A rolling update replaces members in the
flavor's order (the leader last).

Members that die young are noted by the crash-loop watch (:mod:`.crashwatch`, over the
pure :mod:`.crashloop` ledger); past its threshold their slot backs off before being
re-created. The ledger is persisted with the rolling-update state (``on_state``; ``resume``
at commit), so neither a restart nor a failover resets it; so are the spec versions a
manager names at commit (``version``), which the reasons of replacements quote.

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

from infrakit import durations, errors
from infrakit.group import (
    actions,
    backoff,
    clock,
    crashloop,
    crashwatch,
    decide,
    destroying,
    gate,
    health,
    inflight,
    jobs,
    membership,
    phase,
    probing,
    rolling,
    roster,
    tags,
)
from infrakit.group import status as status_
from infrakit.group.target import Target, resized
from infrakit.spi import flavor, group, instance

log = logging.getLogger(__name__)

OnState = Callable[[group.ID, rolling.UpdateState | None], Awaitable[None]]
"""Persists a group's rolling-update state and crash-loop counts (``None``: neither)."""

WORKERS = 256
"""Operations one batch runs at once when ``max_parallel`` sets no limit (bounds memory)."""
BUSY_POLLS = 10
"""While creations or removals are in flight, reconcile every this many poll intervals."""


class Supervisor:
    """Keeps one group at its declared state."""

    def __init__(self, target: Target, *, plugins: actions.Plugins, source: clock.Clock,
                 poll_interval: float, limiter: asyncio.Semaphore | None, workers: int,
                 on_state: OnState | None, rng: random.Random,
                 update: rolling.UpdateState | None = None, version: str | None = None) -> None:
        """``update``: a state saved by ``on_state`` (used when it is for this config);
        ``version``: the spec's version label, when a manager supplied one."""
        self.target = target
        self.plugins = plugins
        self.clock = source
        self.poll_interval = poll_interval
        resumed = update if update is not None and update.target == target.sha else None
        self.update = _rolling(resumed)
        self.versions = roster.noted({}, sha=target.sha, version=version,
                                     saved=update.versions if update is not None else None)
        """Spec versions by config hash, as far as known (action reasons name them)."""
        self.breaker = backoff.Breaker(target.props.provision, rng=rng)
        self.book = health.Book()
        self.recorder = status_.Recorder(target.gid, source)
        self.crashes = crashwatch.Watch(
            crashloop.for_config(resumed.crashes if resumed else None, target.sha),
            recorder=self.recorder, book=self.book, source=source)
        self.ledger = inflight.Ledger()
        self.destroyer = destroying.Destroyer(
            plugins=plugins, clock=source, recorder=self.recorder, ledger=self.ledger,
            workers=workers, on_error=self._job_failed)
        self.destroying = False
        self._limiter = limiter
        self._workers = workers
        self._on_state = on_state
        self._persisting = asyncio.Lock()
        self._update_since = source.monotonic()
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
        self._waiting: dict[str, str] = {}
        """Members a decided removal waits on (the flavor said not now), with its reason."""
        self._undecided: set[str] = set()
        """Members whose removal started but whose flavor has not said yes yet."""
        self._asking = asyncio.Lock()
        """One CanRemove at a time: each answer counts the removals allowed before it."""
        self._order_error = ""
        """Why the last Flavor.Order failed (``""``: it did not); no rolling removal then."""
        self._rounds = itertools.count()
        self._unanswered: tuple[int, str] | None = None
        """The round whose CanRemove got no answer, and why: the rest of that round's
        removals wait for the same reason instead of each waiting out the timeout."""
        self._saved = self._persisted()

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

    async def retarget(self, target: Target, *, resume: rolling.UpdateState | None,
                       version: str | None = None) -> None:
        """A new commit: plan from ``target`` from now on; a new config starts a new update
        and new crash-loop counts."""
        previous, self.target = self.target, target
        self.versions = roster.noted(self.versions, sha=target.sha, version=version,
                                     saved=resume.versions if resume is not None else None)
        if target.spec != previous.spec:
            self.breaker.reset(target.props.provision)
        resumed = resume if resume is not None and resume.target == target.sha else None
        self.crashes.retarget(target.sha, resumed=resumed.crashes if resumed else None)
        update = _rolling(resumed)
        if update is not None:
            self._start_update(update)
        elif target.sha != previous.sha:
            grows = target.props.logical_ids is None and target.props.size > previous.props.size
            self._start_update(rolling.UpdateState(
                target=target.sha, hold_size=previous.props.size if grows else None))
        self._last = None
        self.wake()
        if self._persisted() != self._saved:
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
        await self._order(target, view)
        if target is not self.target or self._stopping:
            return  # a commit arrived meanwhile: decide from the new spec, at once
        wall = self.clock.time()
        self.crashes.recoveries(target, view, now=now, wall=wall)
        self.crashes.pruned(target, now=wall)
        decision = decide.decide(target, view, self.update, now=now,
                                 allowance=self.breaker.allowance(now),
                                 update_since=self._update_since,
                                 waiting=self.crashes.waiting(now=wall))
        if self.crashes.replacements(target, decision, ledger=self.ledger, now=now):
            # A replacement that is a young death may start a backoff: its slot waits now,
            # not after one more re-creation.
            decide.hold_back(decision, self.crashes.waiting(now=wall))
        before, self.update = self.update, decision.update
        if decision.update is not None and (before is None or before.target != target.sha):
            self._update_since = now  # an update found by looking (not by a commit) starts now
        self._execute(target, decision)
        self._publish(target, decision, listed, before=before)
        if self._persisted() != self._saved:
            await self._persist()

    def _unchanged(self, target: Target, listed: Sequence[instance.Description]) -> bool:
        """True when deciding again would decide the same: the last reconcile found the
        group converged, for this very spec, with these very members (the same objects: the
        RPC layer reuses an unchanged answer), nothing is in flight, expected, updating or
        due a probe. At 10,000 members this spares 70% of a steady poll's CPU."""
        last = self._last_listed
        return (self._last is not None and self._last.converged and target is self._last_target
                and self._error is None and self.update is None
                and target.props.health.interval <= 0 and not self.crashes.slots
                and self.ledger.idle and not self._batches
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
        """What is there, net of the work in flight and of its effects not yet listed; the
        members that vanished young are noted as deaths."""
        ledger = self.ledger
        ttl = max(3 * self.poll_interval, 10.0)
        found = ledger.account(listed, now, ttl=ttl)
        self.crashes.accounted(now)
        for gone in found.vanished:
            self.crashes.vanished(target, gone, now=now, ttl=ttl)
        self.book.keep_only(found.members)
        return decide.View(members=found.members, unobserved=found.unobserved,
                           locked=found.unobserved | ledger.doomed,
                           first_seen=ledger.first_seen,
                           pending=list(ledger.creating.values()),
                           removing=len(ledger.removing), book=self.book)

    async def _probe(self, target: Target, view: decide.View, now: float) -> None:
        """Ask Flavor.Healthy of members due a probe, and of new members an update waits on."""
        members = probing.due(target, view, update=self.update, book=self.book, now=now)
        await probing.probe(members, target=target, plugins=self.plugins, book=self.book,
                            source=self.clock, now=now, workers=self._workers,
                            on_error=self._job_failed)

    async def _order(self, target: Target, view: decide.View) -> None:
        """Ask Flavor.Order while a rolling update has members to replace."""
        update = self.update
        self._order_error = ""
        if (update is not None and not update.active) or all(
                tags.is_current(m, target.sha) for m in view.members.values()):
            return
        found = await gate.order(self.plugins, target.props, list(view.members.values()),
                                 source=self.clock)
        view.order, self._order_error = found.ids, found.error

    def _execute(self, target: Target, decision: decide.Decision) -> None:
        """Start the decided creations and removals in the background."""
        plugins = actions.memoized(self.plugins)
        work: list[Callable[[], Awaitable[bool]]] = []
        ticket = self.breaker.ticket()  # failures of one batch count once
        wanted = {removal.member.id for removal in decision.removals}
        self._waiting = {iid: why for iid, why in self._waiting.items() if iid in wanted}
        round_ = next(self._rounds)
        for removal in decision.removals:
            self.ledger.removal_started(removal.member.id)
            self._undecided.add(removal.member.id)
            work.append(functools.partial(self._remove, target, removal, plugins=plugins,
                                          round_=round_))
        for create in decision.creates:
            token = self.ledger.creation_started(create.logical_id)
            work.append(functools.partial(self._create, target, create, token, ticket,
                                          plugins=plugins))
        if work:
            jobs.spawn(self._batch(work), into=self._batches, on_error=self._job_failed,
                       name=f"group {self.gid} batch")

    async def _batch(self, work: Sequence[Callable[[], Awaitable[bool]]]) -> None:
        if any(await self._bounded(work)):
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
                self._expect(target, iid, create.logical_id, token=token)
            self.recorder.add("created", f"created {iid} because {create.reason}", instance=iid)
            return True
        finally:
            self.ledger.creation_ended(token)

    def _expect(self, target: Target, iid: str, logical_id: instance.LogicalID | None, *,
                token: int | None = None) -> None:
        self.ledger.created(instance.Description(
            id=instance.ID(iid), logical_id=logical_id,
            tags={tags.GROUP: target.gid, tags.CONFIG_SHA: target.sha}),
            self.clock.monotonic(), token=token)

    async def _remove(self, target: Target, removal: membership.Removal, *,
                      plugins: actions.Plugins, round_: int) -> bool:
        member = removal.member
        try:
            if target is not self.target or self._stopping:
                return False
            if not await self._may_go(target, removal, plugins=plugins, round_=round_):
                return False
            async with self._limit():
                if not await self.destroyer.one(target, member, plugins=plugins):
                    return False
            self.recorder.add(removal.verb, self._removal_message(target, removal),
                              instance=member.id)
            return True
        finally:
            self._undecided.discard(member.id)
            self.ledger.removal_ended(member.id)

    async def _may_go(self, target: Target, removal: membership.Removal, *,
                      plugins: actions.Plugins, round_: int) -> bool:
        """Flavor.CanRemove, one member at a time, given the group as it is now: the members
        there, less those already allowed to go, plus those still to be asked about."""
        member = removal.member
        async with self._asking:
            if target is not self.target or self._stopping:
                return False
            unanswered = self._unanswered
            if removal.cause == "rolling" and self._order_error:
                answer = flavor.Removal(allowed=False, reason=self._order_error)
            elif unanswered is not None and unanswered[0] == round_:
                answer = gate.unanswered(target.props, member, unanswered[1])
            else:
                going, undecided = self.ledger.removing, self._undecided
                members = [m for iid, m in self.ledger.present.items()
                           if iid not in going or iid in undecided]
                asked = await gate.ask(plugins, target.props, member, members,
                                       source=self.clock)
                answer = asked.removal
                if asked.error:
                    self._unanswered = (round_, asked.error)
            if answer.allowed:
                self._undecided.discard(member.id)
                self._waiting.pop(member.id, None)
                return True
            if self._waiting.get(member.id) != answer.reason:
                self.recorder.add("waiting", f"not removing {member.id} now: {answer.reason}",
                                  instance=member.id)
            self._waiting[member.id] = answer.reason
            return False

    def _removal_message(self, target: Target, removal: membership.Removal) -> str:
        member = removal.member
        if removal.cause == "rolling":
            old = roster.label(tags.config_sha(member), self.versions)
            new = roster.label(target.sha, self.versions)
            return f"replaced {member.id} ({old} → {new}, rolling update)"
        said = self.book.reason(member.id) if removal.cause == "unhealthy" else ""
        return f"{removal.verb} {member.id} because {removal.reason}" + (
            f": {said}" if said else "")

    def _limit(self) -> asyncio.Semaphore | jobs.Unlimited:
        return self._limiter if self._limiter is not None else jobs.UNLIMITED

    async def _bounded(self, work: Sequence[Callable[[], Awaitable[bool | None]]]) -> list[
            bool | None]:
        return await jobs.bounded(work, workers=self._workers, on_error=self._job_failed)

    def _job_failed(self, err: Exception) -> None:
        """A job raised instead of handling its error: record it (the next poll retries)."""
        log.error("group %s: a job failed", self.gid, exc_info=err)
        self.recorder.add("error", f"an operation failed unexpectedly: "
                          f"{type(err).__name__}: {err}")

    # Reporting -----------------------------------------------------------------------

    def _publish(self, target: Target, decision: decide.Decision,
                 listed: Sequence[instance.Description], *,
                 before: rolling.UpdateState | None) -> None:
        self._last, self._last_target, self._last_listed = decision, target, listed
        self._last_ids = frozenset(m.id for m in listed)
        for hold in decision.holds:
            if hold not in self._holds:
                self.recorder.add("holding", hold)
        if decision.update is not None and decision.update.paused and not (
                before is not None and before.paused):
            self.recorder.add("paused", decision.update.reason)
        self._holds = decision.holds

    def _probed(self) -> bool:
        update = self.update
        return self.target.props.health.interval > 0 or (
            update is not None and not update.aborted)

    def _facts(self) -> phase.Facts:
        breaker = self.breaker
        return phase.Facts(
            target=self.target, decision=self._last, update=self.update,
            members=self.ledger.existing(), book=self.book, probed=self._probed(),
            ledger=self.ledger.snapshot(), busy=bool(self._batches),
            provisioning=phase.Provisioning(
                failures=breaker.failures, failing=breaker.failing,
                last_error=breaker.last_error, cap=breaker.policy.backoff_cap),
            crashes=self.crashes.ledger, now=self.clock.time(),
            error=self._error, destroying=self.destroying, waiting=dict(self._waiting))

    def converged(self) -> bool:
        """Every member exists, matches the spec and is Healthy (or unprobed), the last
        reconcile found nothing to do, and nothing is in flight since."""
        return phase.converged(self._facts())

    def status(self) -> status_.Status:
        """The group's status now."""
        facts = self._facts()
        verdict = phase.judge(facts)
        counts = verdict.counts
        rows = roster.rows(
            members=facts.members, removing=self.ledger.leaving(),
            creating=self.ledger.creating.values(), first_seen=self.ledger.first_seen,
            book=self.book, probed=facts.probed, versions=self.versions,
            clocks=roster.Clocks(monotonic=self.clock.monotonic(), wall=facts.now),
            waiting=facts.waiting)
        return status_.Status(
            id=self.gid, phase=verdict.phase, reason=verdict.reason,
            size=self.target.props.size, members=counts.existing + counts.creating,
            converged=phase.converged(facts, counts), config_sha=self.target.sha,
            update=self._persisted(), provision_failures=self.breaker.failures,
            crash_looping=phase.looping(facts), counts=counts, instances=rows.members,
            more_instances=rows.more, actions=self.recorder.recent(),
            waiting=dict(facts.waiting) or None)

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

    def _persisted(self) -> rolling.UpdateState | None:
        """What ``on_state`` saves: the rolling update with the crash-loop counts and the
        spec versions (an ``Idle`` state when only the counts are there), ``None`` when
        neither an update nor counts are there (the versions then name only the current
        config, which every commit names again)."""
        crashes = self.crashes.ledger if self.crashes.slots else None
        versions = self.versions or None
        if self.update is None:
            return None if crashes is None else rolling.UpdateState(
                target=self.target.sha, idle=True, crashes=crashes, versions=versions)
        return self.update.model_copy(update={"crashes": crashes, "versions": versions})

    async def _persist(self) -> None:
        if self._on_state is None:
            self._saved = self._persisted()
            return
        async with self._persisting:
            state = self._saved = self._persisted()
            try:
                await self._on_state(self.gid, state)
            except Exception as err:  # persisting is best effort; the update goes on
                log.exception("group %s: on_state failed", self.gid)
                self.recorder.add("error", f"could not persist the update state: {err}")

    # Explicit destroys -----------------------------------------------------------------

    async def destroy_members(self, ids: Sequence[str]) -> None:
        """DestroyInstances: drain and destroy these members (protected ones too).

        A scaled group's size goes down by one with each member destroyed, so the group
        does not replace them; a pet is recreated for its logical ID.
        """
        def shrink(_: instance.Description) -> None:
            if self.target.props.logical_ids is None:
                self.target = resized(self.target, max(0, self.target.props.size - 1))

        try:
            await self.destroyer.chosen(lambda: self.target, ids, on_destroyed=shrink)
        finally:
            self.wake()

    async def destroy_all(self) -> None:
        """DestroyGroup: stop, then drain and destroy every member before returning.

        Refuses (ConflictError, nothing destroyed) while members are protected. On a
        failure the group stays ``Destroying`` and unsupervised; DestroyGroup again retries.
        """
        shielded = await destroying.shielded(self.plugins, self.target)
        if shielded:
            protect = self.target.props.scale.protect_tag
            raise errors.ConflictError(
                f"group '{self.gid}' has protected members ({', '.join(shielded)}): destroy "
                f"them with DestroyInstances or remove their {protect} tag first",
                group=self.gid)
        await self.stop()
        self.destroying = True
        await self.destroyer.every(self.target)


def _rolling(state: rolling.UpdateState | None) -> rolling.UpdateState | None:
    """The rolling update a persisted state holds (``None`` when it is ``Idle``)."""
    if state is None or state.idle:
        return None
    return state.model_copy(update={"crashes": None, "versions": None})
