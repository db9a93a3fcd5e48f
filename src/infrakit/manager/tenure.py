"""One spell of leadership: take over safely, keep the store and the backend in step, hand
back cleanly.

The manager (:mod:`.proxy`) starts a :class:`Tenure` when it gains leadership and ends it
when it loses it. In between the tenure:

1. waits out the **handover** delay (:func:`handover_delay`): the time the previous
   leader's backend may still be acting once that leader stopped leading;
2. loads the store (the last good document when the store went bad since) and commits every
   group to the backend, each with its saved rolling-update state as ``resume`` and its
   store version as ``version`` (:meth:`Tenure.version_of`); a store
   that cannot be read, or groups the backend refuses, are logged and tried again after a
   backoff (:func:`retry_delay`). Until every group is committed the take-over is
   incomplete: :meth:`Tenure.progress` says how it stands and :meth:`Tenure.refusal` is the
   error callers get at once (only a CommitGroup or FreeGroup, which can mend a group the
   backend refuses, goes through once the store is read);
3. every ``state_poll`` seconds asks the backend for each group's description: a rolling
   update's state that changed is saved (so the next leader resumes it), and a group the
   backend no longer knows (it restarted, or fenced itself) is committed again.

A **destroy** leaves a record in the group's state before the group leaves the document
(:meth:`Tenure.remove`) and clears it once the members are gone
(:meth:`Tenure.destroy_members`). A destroy cut short (the leader died or lost leadership,
the backend failed) is finished from that record by the take-over and by each round of
step 3, by this leader or the next.

On loss :meth:`halt` runs synchronously, at the moment of the change: nothing more reaches
the backend from this tenure. :meth:`end` then frees every group from the backend (the
instances stay) so that the next leader starts from a backend that supervises nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from infrakit import durations, errors, words
from infrakit.group import clock as clock_
from infrakit.manager import leader, store
from infrakit.spi import group, instance, plugin
from infrakit.spi.wire import Wire

log = logging.getLogger(__name__)

FREE_TIMEOUT = 10.0
"""Seconds freeing the backend's groups may take when leadership ends."""
RETRY_FIRST = 1.0
"""Seconds before the first new attempt of a take-over that failed; doubled each time."""
RETRY_CAP = 30.0
"""The most seconds between attempts of a take-over."""


class Backend(Protocol):
    """The group plugin behind a manager (an RPC proxy, or the controller in-process)."""

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None, version: str | None = None) -> str: ...

    async def free_group(self, gid: group.ID) -> None: ...

    async def describe_group(self, gid: group.ID) -> group.Description: ...

    async def destroy_group(self, gid: group.ID) -> None: ...

    async def inspect_groups(self) -> list[group.Spec]: ...

    async def destroy_instances(self, gid: group.ID,
                                instances: list[instance.ID]) -> None: ...

    async def size(self, gid: group.ID) -> int: ...

    async def set_size(self, gid: group.ID, size: int) -> None: ...

    async def pause(self, gid: group.ID) -> None: ...

    async def resume(self, gid: group.ID) -> None: ...

    async def abort(self, gid: group.ID) -> None: ...

    async def wake(self, gid: group.ID | None = None) -> None: ...


def handover_delay(backend: str, *, fence_interval: float, poll: float = 0.0,
                   ttl: float = 0.0, margin: float = 0.1) -> float:
    """Seconds a new leader waits before it acts, so that the old one has stopped.

    A backend group plugin fences itself: it stops supervising within ``fence_interval``
    of its manager dying or no longer leading. So:

    - ``etcd``: the old leader's token lapsed at 5/6 of the TTL after its last renewal, and
      nobody can win before the whole TTL has passed; only the part of the fence interval
      that does not fit in that last sixth is left to wait (usually nothing);
    - ``file`` (the leader file): the old leader notices the file changed at its next poll,
      then its backend within the fence interval;
    - ``flock``: the lock passes only when its holder exits (or stops cleanly, having freed
      its backend first); a holder that died leaves a backend that stops within the fence
      interval.
    """
    if backend == "etcd":
        return max(0.0, fence_interval + margin - ttl / 6)
    if backend == "file":
        return poll + fence_interval + margin
    return fence_interval + margin


def retry_delay(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th failed attempt (from 1) to take over."""
    return min(RETRY_CAP, RETRY_FIRST * 2.0 ** min(attempt - 1, 62))


class Progress(Wire):
    """(ext) How the leader's take-over stands, as ``manager leader`` shows it."""

    phase: str = ""
    """``waiting`` (the handover), ``loading``, ``committing``, ``retrying`` or ``done``."""
    groups: int = 0
    """Groups in the store to take over (0 until it is read)."""
    committed: int = 0
    """Of those, the groups committed to the backend."""
    attempts: int = 0
    """Attempts that failed so far."""
    last_error: str = ""
    """Why the last attempt failed."""
    next_try: float = 0.0
    """Seconds until the next attempt (``retrying``)."""
    summary: str = ""
    """All of it in one line: "taking over: 2 of 3 groups committed; last error: ..."."""


def update_of(description: group.Description) -> store.State | None:
    """The rolling update in flight, from the (ext) status of a DescribeGroup answer."""
    status = description.status
    update = status.get("Update") if isinstance(status, dict) else None
    return update if isinstance(update, dict) else None


def emptied(spec: group.Spec) -> group.Spec:
    """``spec`` allocating no members (``Allocation: {Size: 0}``), for a backend that is to
    destroy them: committed as it was, it would first provision the ones missing."""
    properties = spec.properties
    if not isinstance(properties, dict) or not isinstance(properties.get("Allocation"), dict):
        return spec
    return spec.model_copy(update={"properties": {**properties, "Allocation": {"Size": 0}}})


class Tenure:
    """What the leader holds while it leads: the current document and the backend."""

    def __init__(self, manager: str, *, storage: store.Store, backend: Backend,
                 token: Callable[[], leader.Token | None], handover: float,
                 state_poll: float, clock: clock_.Clock | None = None) -> None:
        self.manager = manager
        self.store = storage
        self.backend = backend
        self._token = token
        self.handover = handover
        self.state_poll = state_poll
        self.clock = clock if clock is not None else clock_.RealClock()
        self.doc = store.Document()
        """The document as this leader last saved or loaded it."""
        self.ready = asyncio.Event()
        """Set once every stored group has been committed to the backend."""
        self.settled = asyncio.Event()
        """Set when ready, when an attempt to take over failed (see :meth:`refusal`), or
        when halted: callers wait for it, then act or hear why not."""
        self.loaded = False
        """True once the store has been read (calls that mend a group may act)."""
        self.halted = False
        self._phase = "waiting"
        self._pending: set[group.ID] = set()
        self._attempts = 0
        self._last_error = ""
        self._retry_at: float | None = None
        self._took_over = 0
        self._saved: dict[group.ID, store.State | None] = {}
        self._destroying: dict[group.ID, plugin.Spec] = {}
        """Groups out of the document whose members are not all destroyed yet."""
        self._locks: dict[group.ID, asyncio.Lock] = {}
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    # Lifecycle -------------------------------------------------------------------------

    def begin(self, *, after: asyncio.Task[None] | None = None) -> None:
        """Start taking over, once ``after`` (the previous tenure's end) is done."""
        self._task = asyncio.create_task(self._run(after), name=f"tenure:{self.manager}")

    def halt(self) -> None:
        """Leadership is gone: act no more (synchronous, called at the moment of loss)."""
        self.halted = True
        self.ready.clear()
        self.settled.set()  # callers waiting for the take-over hear the news now
        if self._task is not None:
            self._task.cancel()

    async def end(self) -> None:
        """Halt, then free every group from the backend (instances stay)."""
        self.halt()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with asyncio.timeout(FREE_TIMEOUT):
                await self._free_all()
                await self._wait_for_calls()
                await self._free_all()  # what a call in flight committed meanwhile
        except (TimeoutError, errors.InfrakitError) as e:
            # The backend's fence stops it anyway once it sees we do not lead.
            log.warning("%s: could not free every group from the backend: %s",
                        self.manager, e)

    async def _free_all(self) -> None:
        held = await self.backend.inspect_groups()
        results = await asyncio.gather(*(self.backend.free_group(s.id) for s in held),
                                       return_exceptions=True)
        freed = [s.id for s, r in zip(held, results, strict=True) if r is None]
        if freed:
            log.info("%s: freed %s from the backend (instances stay)", self.manager,
                     ", ".join(freed))

    async def _wait_for_calls(self) -> None:
        for lock in list(self._locks.values()):
            async with lock:
                pass

    async def _run(self, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.shield(after)
        if self.handover > 0:
            log.info("%s: waiting %.2fs for the previous leader's backend to stop",
                     self.manager, self.handover)
            await self.clock.sleep(self.handover)
        await self._take_over()
        while True:
            await self.clock.sleep(self.state_poll)
            try:
                await self.watch()
            except Exception:  # keeping in step must outlive any one failed round
                log.exception("%s: watching the backend failed", self.manager)

    async def _take_over(self) -> None:
        """Read the store, then commit every group; retry what failed until all is done."""
        self._phase = "loading"
        while not await self._load():
            await self._retry_later()
        self.loaded = True
        self._last_error = ""
        self._pending = set(self.doc.groups)
        self._phase = "committing"
        await self._find_destroys()
        await asyncio.gather(*(self._restore(gid) for gid in self.doc.groups),
                             self._finish_destroys())
        while pending := self._still_pending():
            log.warning("%s: took over %d of %s so far; not yet %s", self.manager,
                        len(self.doc.groups) - len(pending),
                        words.plural(len(self.doc.groups), "group"), ", ".join(sorted(pending)))
            await self._retry_later()
            await asyncio.gather(*(self._commit_pending(gid) for gid in self._still_pending()))
        self._complete()

    async def _load(self) -> bool:
        try:
            self.doc = await self.store.load()
            return True
        except errors.InfrakitError as e:
            last = self.store.last_good
            if last is None:
                self._last_error = e.message
                return False
            log.error("%s: %s; keeping the last good document", self.manager, e.message)
            self.doc = last
            return True

    async def _retry_later(self) -> None:
        """Say why the take-over is not done, then wait (with backoff) for the next try."""
        self._attempts += 1
        delay = retry_delay(self._attempts)
        self._retry_at = self.clock.monotonic() + delay
        log.error("%s: %s", self.manager, self.progress().summary)
        self.settled.set()  # callers hear why at once
        try:
            await clock_.wait_event(self.clock, self.ready, delay)  # or mended by calls
        finally:
            self._retry_at = None

    def _still_pending(self) -> set[group.ID]:
        # A group freed or destroyed meanwhile is no longer the take-over's to commit.
        return {gid for gid in self._pending if gid in self.doc.groups}

    def _complete(self) -> None:
        if self.ready.is_set() or self.halted:
            return
        self._took_over = len(self.doc.groups)
        self._phase = "done"
        self.ready.set()
        self.settled.set()
        log.info("%s: took over %s", self.manager, words.plural(self._took_over, "group"))

    async def _restore(self, gid: group.ID) -> None:
        try:
            state = await self.store.load_state(gid)
        except errors.InfrakitError as e:
            log.error("%s: group %s: %s; committing without its update state",
                      self.manager, gid, e.message)
            state = None
        if store.destroying_entry(state) is not None:
            # Destroyed, then committed again before the destroy's record was cleared.
            state = None
            await self.forget_state(gid)
        self._saved[gid] = state
        async with self.lock(gid):
            await self._commit_taking_over(gid)

    async def _commit_pending(self, gid: group.ID) -> None:
        async with self.lock(gid):
            if gid in self._still_pending():  # not mended by a call meanwhile
                await self._commit_taking_over(gid)

    async def _commit_taking_over(self, gid: group.ID) -> None:
        refused = await self._commit_stored(gid, resume=self._saved.get(gid))
        if refused is None:
            self._pending.discard(gid)
        else:
            self._last_error = f"group {gid!r}: {refused}"

    async def _commit_stored(self, gid: group.ID, *, resume: store.State | None) -> str | None:
        """Commit the stored spec to the backend; why not, when it failed (logged)."""
        try:
            self.check()
            version = await self.version_of(gid)
            details = await self.backend.commit_group(self.doc.group_spec(gid), False,
                                                      resume=resume, version=version)
        except errors.InfrakitError as e:
            log.error("%s: could not commit group %s to the backend (retrying): %s",
                      self.manager, gid, e.message)
            return e.message
        except Exception as e:  # retried; the take-over goes on for the others
            log.exception("%s: could not commit group %s to the backend (retrying)",
                          self.manager, gid)
            return str(e) or type(e).__name__
        log.info("%s: committed group %s: %s", self.manager, gid, details)
        return None

    # How the take-over stands ----------------------------------------------------------

    def progress(self) -> Progress:
        """The take-over now, for ``manager leader`` and for the callers' errors."""
        groups = len(self.doc.groups) if self.loaded else 0
        committed = groups - len(self._still_pending()) if self.loaded else 0
        next_try = 0.0
        if self._retry_at is not None:
            next_try = max(0.0, self._retry_at - self.clock.monotonic())
        phase = ("done" if self.ready.is_set() else
                 "retrying" if self._retry_at is not None else self._phase)
        return Progress(phase=phase, groups=groups, committed=committed,
                        attempts=self._attempts, last_error=self._last_error,
                        next_try=next_try, summary=self._summary(
                            phase, groups=groups, committed=committed, next_try=next_try))

    def _summary(self, phase: str, *, groups: int, committed: int, next_try: float) -> str:
        if phase == "done":
            return f"took over {words.plural(self._took_over, 'group')}"
        if phase == "waiting":
            return "taking over: waiting for the previous leader's backend to stop"
        if not self.loaded:
            parts = ["taking over: " + ("cannot read the store" if self._attempts
                                        else "reading the store")]
        else:
            parts = [f"taking over: {committed} of {groups} groups committed"]
        if self._last_error:
            parts.append(f"last error: {self._last_error}")
        if phase == "retrying":
            parts.append(f"next try in {durations.format_duration(round(next_try, 1))}")
        elif self._attempts:
            parts.append("trying again now")
        return "; ".join(parts)

    def refusal(self) -> errors.InfrakitError | None:
        """What a call gets now instead of acting; None once the take-over is done."""
        if self.halted:
            return errors.NotLeaderError(f"manager {self.manager!r} lost leadership",
                                         manager=self.manager)
        if self.ready.is_set():
            return None
        progress = self.progress()
        return errors.TemporaryError(
            f"manager {self.manager!r} leads but is still {progress.summary}",
            delay=progress.next_try or RETRY_FIRST, manager=self.manager)

    def mended(self, gid: group.ID) -> None:
        """A call committed or freed ``gid``: the take-over need not commit it any more."""
        self._pending.discard(gid)
        if self.loaded and not self._still_pending():
            self._complete()

    # Keeping in step -------------------------------------------------------------------

    async def watch(self) -> None:
        """One round: save changed update states, commit groups the backend lost, finish
        destroys cut short."""
        await asyncio.gather(*(self._watch(gid) for gid in list(self.doc.groups)),
                             self._finish_destroys())

    async def _watch(self, gid: group.ID) -> None:
        lock = self.lock(gid)
        if lock.locked():
            return  # a call is acting on this group; look next round
        async with lock:
            if gid not in self.doc.groups or self.halted:
                return
            try:
                description = await self.backend.describe_group(gid)
            except errors.PluginNotFound as e:
                log.warning("%s: the backend is not running: %s", self.manager, e.message)
                return
            except errors.NotFoundError:
                log.warning("%s: the backend does not supervise group %s; committing it "
                            "again", self.manager, gid)
                await self._commit_stored(gid, resume=self._saved.get(gid))
                return
            except errors.InfrakitError as e:
                log.warning("%s: describing group %s failed: %s", self.manager, gid,
                            e.message)
                return
            await self.record_state(gid, update_of(description))

    async def record_state(self, gid: group.ID, state: store.State | None) -> None:
        """Save the group's update state if it changed (and the group is still ours);
        a failure is logged (the next change, or the next round, tries again)."""
        if gid not in self.doc.groups or self._saved.get(gid, None) == state:
            return
        try:
            await self.put_state(gid, state)
        except errors.InfrakitError as e:
            log.error("%s: could not save the update state of %s: %s", self.manager, gid,
                      e.message)

    async def put_state(self, gid: group.ID, state: store.State | None) -> None:
        """Save the group's update state now; errors reach the caller."""
        if gid not in self.doc.groups:
            return
        self.check()
        await self.store.save_state(gid, state)
        self._saved[gid] = state

    def saved_state(self, gid: group.ID) -> store.State | None:
        return self._saved.get(gid)

    async def version_of(self, gid: group.ID) -> str | None:
        """The store's version number of the group's committed spec (``"3"``), which the
        backend names in its reasons (``v2 → v3``); ``None`` when the history does not hold
        it (trimmed, unreadable: logged)."""
        entry = self.doc.groups.get(gid)
        try:
            entries = await self.store.history(gid)
        except errors.InfrakitError as e:
            log.warning("%s: group %s: no version for the backend: %s", self.manager, gid,
                        e.message)
            return None
        if entry is None or not entries or entries[-1].spec.to_wire() != entry.to_wire():
            return None
        return str(entries[-1].version)

    # Destroying ------------------------------------------------------------------------

    async def remove(self, gid: group.ID) -> plugin.Spec:
        """Take group ``gid`` out of the document, recording first that its members are to be
        destroyed; its entry as it was. The caller holds the group's lock, then calls
        :meth:`destroy_members`, or :meth:`keep` when the backend refuses."""
        entry, state = self.doc.groups[gid], self._saved.get(gid)
        self.check()
        await self.store.save_state(gid, store.destroying(entry))
        try:
            await self.update(lambda doc: doc.without_group(gid))
        except errors.InfrakitError:
            await self.put_state(gid, state)  # still in the document: its own state back
            raise
        self._saved.pop(gid, None)
        self._destroying[gid] = entry
        return entry

    async def destroy_members(self, entry: plugin.Spec) -> None:
        """Destroy the members of a group :meth:`remove` took out, through the backend; then
        clear the record. On failure the record stays, and a later round tries again."""
        spec = group.Spec.model_validate(entry.properties)
        self.check()
        try:
            await self.backend.destroy_group(spec.id)
        except errors.NotFoundError:
            # The backend does not hold the group (it restarted, or another leader began the
            # destroy): hand it over emptied, so that nothing is provisioned, then destroy
            # the members it finds.
            await self.backend.commit_group(emptied(spec), False)
            try:
                await self.backend.destroy_group(spec.id)
            except errors.ConflictError:
                await self.backend.commit_group(spec, False)  # kept: as it was
                raise
        self._destroying.pop(spec.id, None)
        await self.forget_state(spec.id)

    async def keep(self, entry: plugin.Spec, *, state: store.State | None) -> None:
        """Undo :meth:`remove` (with the group's state before it): the backend refused the
        destroy and destroyed nothing."""
        spec = group.Spec.model_validate(entry.properties)
        await self.update(lambda doc: doc.with_group(spec, plugin_name=entry.plugin))
        self._destroying.pop(spec.id, None)
        await self.put_state(spec.id, state)

    async def _keep_refused(self, gid: group.ID, entry: plugin.Spec) -> None:
        try:
            await self.keep(entry, state=None)
        except errors.InfrakitError as e:
            log.error("%s: could not put group %s back in the store (retrying): %s",
                      self.manager, gid, e.message)

    async def _find_destroys(self) -> None:
        try:
            states = await self.store.load_states()
        except errors.InfrakitError as e:
            log.error("%s: cannot read the groups' states: %s; destroys cut short are not "
                      "finished", self.manager, e.message)
            return
        for gid, state in states.items():
            entry = store.destroying_entry(state)
            if entry is not None and gid not in self.doc.groups:
                log.info("%s: group %s was being destroyed; finishing it", self.manager, gid)
                self._destroying[gid] = entry

    async def _finish_destroys(self) -> None:
        await asyncio.gather(*(self._finish_destroy(gid) for gid in list(self._destroying)))

    async def _finish_destroy(self, gid: group.ID) -> None:
        lock = self.lock(gid)
        if lock.locked():
            return  # a call is acting on this group; look next round
        async with lock:
            entry = self._destroying.get(gid)
            if entry is None or self.halted:
                return
            if gid in self.doc.groups:  # committed again: the new commit has the members
                self._destroying.pop(gid)
                if gid not in self._saved:  # no update state saved over the record
                    await self.forget_state(gid)
                return
            try:
                await self.destroy_members(entry)
            except errors.ConflictError as e:
                log.error("%s: group %s cannot be destroyed, so it is kept: %s",
                          self.manager, gid, e.message)
                await self._keep_refused(gid, entry)
            except errors.InfrakitError as e:
                log.warning("%s: destroying group %s failed (retrying): %s", self.manager,
                            gid, e.message)
            except Exception:  # retried; must not end the take-over or the watch
                log.exception("%s: destroying group %s failed (retrying)", self.manager, gid)
            else:
                log.info("%s: finished destroying group %s", self.manager, gid)

    # For the manager's calls -----------------------------------------------------------

    def lock(self, gid: group.ID) -> asyncio.Lock:
        """Held by whoever acts on the group: a call, or a round of :meth:`watch`."""
        return self._locks.setdefault(gid, asyncio.Lock())

    def check(self) -> None:
        """:class:`errors.NotLeaderError` once leadership is gone: call before acting."""
        if self.halted or self._token() is None:
            raise errors.NotLeaderError(f"manager {self.manager!r} does not lead (any more)")

    async def update(self, change: Callable[[store.Document], store.Document]) -> None:
        """Save ``change(current document)``, fenced by the leadership token."""
        async with self._writing:
            self.check()
            changed = change(self.doc)
            await self.store.save(changed)
            self.doc = changed

    async def forget_state(self, gid: group.ID) -> None:
        """Clear the group's saved state (an update's, or a destroy's record); logged when it
        cannot be."""
        self._saved.pop(gid, None)
        try:
            await self.store.save_state(gid, None)
        except errors.InfrakitError as e:
            log.error("%s: could not clear the saved state of %s: %s", self.manager, gid,
                      e.message)
