"""One spell of leadership: take over safely, keep the store and the backend in step, hand
back cleanly.

The manager (:mod:`.proxy`) starts a :class:`Tenure` when it gains leadership and ends it
when it loses it. In between the tenure:

1. waits out the **handover** delay (:func:`handover_delay`): the time the previous
   leader's backend may still be acting once that leader stopped leading;
2. loads the store (the last good document when the store went bad since) and commits every
   group to the backend, each with its saved rolling-update state as ``resume``;
3. every ``state_poll`` seconds asks the backend for each group's description: a rolling
   update's state that changed is saved (so the next leader resumes it), and a group the
   backend no longer knows (it restarted, or fenced itself) is committed again.

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

from infrakit import errors
from infrakit.manager import leader, store
from infrakit.spi import group, instance

log = logging.getLogger(__name__)

FREE_TIMEOUT = 10.0
"""Seconds freeing the backend's groups may take when leadership ends."""
RETRY_LOAD = 2.0
"""Seconds between attempts to load a store that could not be read."""


class Backend(Protocol):
    """The group plugin behind a manager (an RPC proxy, or the controller in-process)."""

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None) -> str: ...

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


def update_of(description: group.Description) -> store.State | None:
    """The rolling update in flight, from the (ext) status of a DescribeGroup answer."""
    status = description.status
    update = status.get("Update") if isinstance(status, dict) else None
    return update if isinstance(update, dict) else None


class Tenure:
    """What the leader holds while it leads: the current document and the backend."""

    def __init__(self, manager: str, *, storage: store.Store, backend: Backend,
                 token: Callable[[], leader.Token | None], handover: float,
                 state_poll: float) -> None:
        self.manager = manager
        self.store = storage
        self.backend = backend
        self._token = token
        self.handover = handover
        self.state_poll = state_poll
        self.doc = store.Document()
        """The document as this leader last saved or loaded it."""
        self.ready = asyncio.Event()
        """Set once every stored group has been committed to the backend."""
        self.failure: errors.InfrakitError | None = None
        """Why the tenure cannot take over yet (a store that cannot be read)."""
        self.settled = asyncio.Event()
        """Set when ready, or when taking over failed (see :attr:`failure`)."""
        self.halted = False
        self._saved: dict[group.ID, store.State | None] = {}
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
        self.failure = errors.NotLeaderError(f"manager {self.manager!r} lost leadership")
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
            await asyncio.sleep(self.handover)
        await self._take_over()
        while True:
            await asyncio.sleep(self.state_poll)
            try:
                await self.watch()
            except Exception:  # keeping in step must outlive any one failed round
                log.exception("%s: watching the backend failed", self.manager)

    async def _take_over(self) -> None:
        while True:
            try:
                self.doc = await self.store.load()
                break
            except errors.InfrakitError as e:
                last = self.store.last_good
                if last is not None:
                    log.error("%s: %s; keeping the last good document", self.manager,
                              e.message)
                    self.doc = last
                    break
                self._fail(e)
                await asyncio.sleep(RETRY_LOAD)
        self.failure = None
        await asyncio.gather(*(self._restore(gid) for gid in self.doc.groups))
        self.ready.set()
        self.settled.set()
        log.info("%s: took over %d group(s)", self.manager, len(self.doc.groups))

    def _fail(self, e: errors.InfrakitError) -> None:
        if self.failure is None or self.failure.message != e.message:
            log.error("%s: cannot take over: %s", self.manager, e.message)
        self.failure = errors.InvalidError(
            f"manager {self.manager!r} leads but cannot take over: {e.message}", **e.data)
        self.settled.set()

    async def _restore(self, gid: group.ID) -> None:
        try:
            state = await self.store.load_state(gid)
        except errors.InfrakitError as e:
            log.error("%s: group %s: %s; committing without its update state",
                      self.manager, gid, e.message)
            state = None
        self._saved[gid] = state
        async with self.lock(gid):
            await self._commit_stored(gid, resume=state)

    async def _commit_stored(self, gid: group.ID, *, resume: store.State | None) -> None:
        try:
            self.check()
            details = await self.backend.commit_group(self.doc.group_spec(gid), False,
                                                      resume=resume)
        except errors.InfrakitError as e:
            log.error("%s: could not commit group %s to the backend (retrying): %s",
                      self.manager, gid, e.message)
            return
        except Exception:  # the next round retries; the take-over goes on for the others
            log.exception("%s: could not commit group %s to the backend (retrying)",
                          self.manager, gid)
            return
        log.info("%s: committed group %s: %s", self.manager, gid, details)

    # Keeping in step -------------------------------------------------------------------

    async def watch(self) -> None:
        """One round: save changed update states, commit groups the backend lost."""
        await asyncio.gather(*(self._watch(gid) for gid in list(self.doc.groups)))

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
        self._saved.pop(gid, None)
        try:
            await self.store.save_state(gid, None)
        except errors.InfrakitError as e:
            log.error("%s: could not clear the update state of %s: %s", self.manager, gid,
                      e.message)
