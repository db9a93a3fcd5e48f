"""The manager: a group plugin in front of the real one (the backend) that persists every
change before it acts, and acts only while it leads.

Served by ``infrakit-manager`` (:mod:`.serve`) and by ``infrakit up`` (:mod:`.embedded`).
Calls that change something are saved in the store first, fenced by the leadership token,
then passed to the backend; reads go to the backend. A call made here while this manager
does not lead raises :class:`errors.NotLeaderError`; over RPC, :mod:`.forward` sends such
calls to the leader instead. What the leader does between gaining and losing leadership
(take over, keep update states, free the backend) is a :class:`.tenure.Tenure`.

Beyond the Group interface: ``pause``/``resume``/``abort``/``wake`` (forwarded, with the
update state saved at once), ``history`` and ``rollback`` (the store's last N specs per
group), ``leader_info``/``is_leader``, and ``take_over`` (how this leader's take-over
stands; until it is done calls fail at once saying so, see :meth:`.tenure.Tenure.refusal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from infrakit import errors
from infrakit.group import clock as clock_
from infrakit.group import rolling
from infrakit.manager import leader, store, tenure
from infrakit.spi import group, instance

log = logging.getLogger(__name__)

T = TypeVar("T")

READY_TIMEOUT = 5.0
"""Seconds a call waits for a new leader's first attempt to take over (the handover, then
the commits); past it, or once an attempt has failed, calls hear how the take-over stands
(:meth:`.tenure.Tenure.refusal`) rather than wait longer."""


class Manager:
    """``Manager(name, leadership=..., store=..., backend=..., backend_name=...)``."""

    def __init__(self, name: str, *, leadership: leader.Leadership, store: store.Store,
                 backend: tenure.Backend, backend_name: str, handover: float = 0.0,
                 state_poll: float = 1.0, ready_timeout: float = READY_TIMEOUT,
                 clock: clock_.Clock | None = None) -> None:
        """``backend_name`` is recorded as each group's Plugin in the store;
        ``handover``: see :func:`.tenure.handover_delay`; ``state_poll``: how often the
        backend's rolling-update states are read and saved; ``clock``: the tenures' time
        (handover, retries, polls), fake in tests."""
        if state_poll <= 0:
            raise errors.InvalidError(f"state_poll: expected seconds > 0, got {state_poll}",
                                      field="state_poll")
        self.name = name
        self.leadership = leadership
        self.store = store
        self.backend = backend
        self.backend_name = backend_name
        self.handover = handover
        self.state_poll = state_poll
        self.ready_timeout = ready_timeout
        self.clock = clock
        self._tenure: tenure.Tenure | None = None
        self._ending: asyncio.Task[None] | None = None
        self._unsubscribe = leadership.on_change(self._on_change)

    # Lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Take part in the election; take over whenever this manager wins."""
        await self.leadership.start()

    async def stop(self) -> None:
        """Free the backend's groups (instances stay), then give leadership up."""
        self._unsubscribe()
        held, self._tenure = self._tenure, None
        if held is not None:
            await held.end()  # before resigning: the next leader must find it idle
        if self._ending is not None:
            await self._ending
        await self.leadership.stop()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Return once this manager leads and has taken over (tests, ``infrakit up``)."""
        async with asyncio.timeout(timeout):
            while self._tenure is None or not self._tenure.ready.is_set():
                await asyncio.sleep(0.02)

    def _on_change(self, change: leader.Change) -> None:
        """Called synchronously at the moment leadership changes."""
        if change.leading:
            if self._tenure is None:
                self._tenure = tenure.Tenure(
                    self.name, storage=self.store, backend=self.backend,
                    token=self.leadership.token, handover=self.handover,
                    state_poll=self.state_poll, clock=self.clock)
                # A new tenure starts once the previous one has freed the backend.
                self._tenure.begin(after=self._ending)
        elif self._tenure is not None:
            held, self._tenure = self._tenure, None
            held.halt()  # nothing acts from here on
            self._ending = asyncio.create_task(held.end(), name=f"hand-back:{self.name}")

    async def _leading(self, *, mending: bool = False) -> tenure.Tenure:
        """The tenure once it has taken over; NotLeaderError when this manager cannot act,
        a TemporaryError saying how the take-over stands while it is not done. ``mending``
        (CommitGroup, FreeGroup) may act once the store is read: it can mend a group the
        backend refuses, which would otherwise keep the take-over from ever finishing."""
        held = self._tenure
        if held is None or not self.leadership.is_leader():
            raise errors.NotLeaderError(f"manager {self.name!r} does not lead",
                                        manager=self.name)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.ready_timeout):
                await held.settled.wait()
        if mending and held.loaded and not held.halted:
            return held
        refused = held.refusal()
        if refused is not None:
            raise refused
        return held

    # Manager ---------------------------------------------------------------------------

    async def is_leader(self) -> bool:
        return self.leadership.is_leader()

    async def leader_info(self) -> leader.Info:
        return await self.leadership.leader_info()

    def take_over(self) -> tenure.Progress | None:
        """How this manager's take-over stands while it leads; None while it does not."""
        held = self._tenure
        return held.progress() if held is not None and not held.halted else None

    async def record_state(self, gid: group.ID, state: rolling.UpdateState | None) -> None:
        """``on_state`` of an in-process controller: save its update state at once."""
        held = self._tenure
        if held is not None and not held.halted:
            await held.record_state(gid, state.to_wire() if state is not None else None)

    # Group: changes, saved first -------------------------------------------------------

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None, version: str | None = None) -> str:
        """Validate (a pretend commit to the backend), save, then commit (with the store's
        version number of the spec: the backend names it in its reasons)."""
        if resume is not None:
            raise errors.InvalidError("Resume: not accepted by a manager (it passes the saved "
                                      "update state to its backend itself)", field="Resume")
        if version is not None:
            raise errors.InvalidError("Version: not accepted by a manager (it numbers the "
                                      "versions in its store itself)", field="Version")
        held = await self._leading(mending=True)
        async with held.lock(spec.id):
            details = await self._commit(held, spec, pretend=pretend)
        if not pretend:
            held.mended(spec.id)
        return details

    async def _commit(self, held: tenure.Tenure, spec: group.Spec, *, pretend: bool) -> str:
        held.check()
        plan = await self.backend.commit_group(spec, True)
        if pretend:
            return plan
        await held.update(lambda doc: doc.with_group(spec, plugin_name=self.backend_name))
        version = await held.version_of(spec.id)
        return await _after_saving(held, lambda: self.backend.commit_group(
            spec, False, resume=held.saved_state(spec.id), version=version), saved=plan)

    async def free_group(self, gid: group.ID) -> None:
        """Forget the group (store first), then free it in the backend; instances stay."""
        held = await self._leading(mending=True)
        async with held.lock(gid):
            if gid in held.doc.groups:
                await held.update(lambda doc: doc.without_group(gid))
                await held.forget_state(gid)
                held.mended(gid)
                with contextlib.suppress(errors.NotFoundError):
                    await _after_saving(held, lambda: self.backend.free_group(gid), saved=None)
                return
            held.check()
            await self.backend.free_group(gid)

    async def destroy_group(self, gid: group.ID) -> None:
        """Forget the group (store first, with a record of the destroy), then destroy its
        members in the backend, then clear the record.

        A refusal (protected members: nothing destroyed) puts the group back in the store.
        Any other failure, or leadership lost on the way, leaves the record: this leader's
        next round, or the next leader, finishes the destroy.
        """
        held = await self._leading()
        async with held.lock(gid):
            if gid not in held.doc.groups:
                held.check()
                await self.backend.destroy_group(gid)
                return
            state = held.saved_state(gid)
            entry = await held.remove(gid)
            _still_leading(held, f"group '{gid}' was removed from the store; the next leader "
                                 "destroys its members")
            try:
                await held.destroy_members(entry)
            except errors.ConflictError:
                await held.keep(entry, state=state)
                raise

    async def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        """Save the smaller size first (a scaled group does not replace them), then destroy."""
        held = await self._leading()
        async with held.lock(gid):
            described = await self.backend.describe_group(gid)
            members = {m.id for m in described.instances}
            unknown = [i for i in instances if i not in members]
            if unknown:
                raise errors.NotFoundError(f"not members of group '{gid}': "
                                           f"{', '.join(unknown)}", group=gid)
            current = _scaled_size(held, gid)
            if current is not None:
                await self._save_size(held, gid, max(0, current - len(set(instances))))
                _still_leading(held, f"the size of group '{gid}' was lowered by "
                                     f"{len(set(instances))} in the store, but "
                                     f"{', '.join(instances)} were not destroyed (the next "
                                     "leader removes members by its scale-down policy)")
            held.check()
            try:
                await self.backend.destroy_instances(gid, instances)
            finally:
                await self._sync_size(held, gid)

    async def set_size(self, gid: group.ID, size: int) -> None:
        """Check the new size with the backend (a pretend commit), save the spec with it,
        then resize in the backend."""
        if size < 0:
            raise errors.InvalidError(f"size must be 0 or more, got {size}", field="Size")
        held = await self._leading()
        async with held.lock(gid):
            if gid not in held.doc.groups:
                raise errors.NotFoundError(f"Group '{gid}' is not being watched", group=gid)
            if _scaled_size(held, gid) is None:
                raise errors.InvalidError(
                    f"group '{gid}' allocates by LogicalIDs; commit a new list to resize it",
                    field="Size")
            # The backend judges the new size first (MaxSize): a size it refuses, once
            # stored, would make every later take-over's commit of the group fail.
            held.check()
            await self.backend.commit_group(_resized(held.doc.group_spec(gid), size), True)
            await self._save_size(held, gid, size)
            await _after_saving(held, lambda: self.backend.set_size(gid, size), saved=None)

    async def _save_size(self, held: tenure.Tenure, gid: group.ID, size: int) -> None:
        spec = _resized(held.doc.group_spec(gid), size)
        plugin_name = held.doc.groups[gid].plugin
        await held.update(lambda doc: doc.with_group(spec, plugin_name=plugin_name))

    async def _sync_size(self, held: tenure.Tenure, gid: group.ID) -> None:
        """After a partial failure, store the size the backend actually holds."""
        stored = _scaled_size(held, gid)
        if stored is None or held.halted:
            return
        try:
            actual = await self.backend.size(gid)
        except errors.InfrakitError:
            return
        if actual != stored:
            await self._save_size(held, gid, actual)

    # Group: rolling-update control, state saved at once --------------------------------

    async def pause(self, gid: group.ID) -> None:
        await self._control(gid, "pause", {"Paused": True})

    async def resume(self, gid: group.ID) -> None:
        await self._control(gid, "resume", {"Paused": False, "Aborted": False})

    async def abort(self, gid: group.ID) -> None:
        await self._control(gid, "abort", {"Aborted": True, "Paused": False})

    async def _control(self, gid: group.ID, verb: str, intent: dict[str, bool]) -> None:
        """Save the update state as the verb will leave it, act, then save what it became."""
        held = await self._leading()
        async with held.lock(gid):
            update = tenure.update_of(await self.backend.describe_group(gid))
            if update is None:
                held.check()
                await getattr(self.backend, verb)(gid)  # the backend says what is wrong
                return
            await held.put_state(gid, {**update, **intent})
            try:
                await _after_saving(held, lambda: getattr(self.backend, verb)(gid), saved=None)
            finally:
                if not held.halted:
                    after = tenure.update_of(await self.backend.describe_group(gid))
                    await held.put_state(gid, after)

    async def wake(self, gid: group.ID | None = None) -> None:
        held = await self._leading()
        held.check()
        await self.backend.wake(gid)

    # Group: reads ----------------------------------------------------------------------

    async def describe_group(self, gid: group.ID) -> group.Description:
        await self._leading()
        return await self.backend.describe_group(gid)

    async def inspect_groups(self) -> list[group.Spec]:
        await self._leading()
        return await self.backend.inspect_groups()

    async def size(self, gid: group.ID) -> int:
        await self._leading()
        return await self.backend.size(gid)

    # History ---------------------------------------------------------------------------

    async def history(self, gid: group.ID) -> list[store.HistoryEntry]:
        """The group's last committed specs, oldest first."""
        await self._leading()
        return await self.store.history(gid)

    async def rollback(self, gid: group.ID, version: int | None = None) -> tuple[int, str]:
        """Commit the group's history entry ``version`` again (default: the one before the
        newest); returns the version and the plan's text."""
        entries = await self.history(gid)
        if not entries:
            raise errors.NotFoundError(f"group {gid!r} has no history", group=gid)
        chosen = _pick(entries, version, gid=gid)
        spec = group.Spec.model_validate(chosen.spec.properties)
        details = await self.commit_group(spec, False)
        return chosen.version, details


async def _after_saving(held: tenure.Tenure, act: Callable[[], Awaitable[T]], *,
                        saved: T) -> T:
    """Act in the backend on a change just saved. If leadership moved in between, the
    next leader applies the saved change when it takes over: the call has succeeded, and
    answers ``saved``, without acting here."""
    try:
        held.check()
        return await act()
    except errors.NotLeaderError:
        log.info("%s: leadership moved after a change was saved; the next leader applies it",
                 held.manager)
        return saved


def _still_leading(held: tenure.Tenure, saved: str) -> None:
    """After a change that cannot be completed by the next leader was saved: leadership
    lost now is a :class:`errors.PermanentError` saying what was saved (never retried
    elsewhere, which could apply it twice)."""
    try:
        held.check()
    except errors.NotLeaderError as e:
        raise errors.PermanentError(f"{saved}: {e.message}") from e


def _pick(entries: list[store.HistoryEntry], version: int | None, *,
          gid: group.ID) -> store.HistoryEntry:
    kept = ", ".join(str(e.version) for e in entries)
    if version is None:
        if len(entries) < 2:
            raise errors.NotFoundError(f"group {gid!r} has no earlier version to roll back "
                                       f"to (versions kept: {kept})", group=gid)
        return entries[-2]
    for entry in entries:
        if entry.version == version:
            return entry
    raise errors.NotFoundError(f"group {gid!r} has no version {version} (versions kept: "
                               f"{kept})", group=gid)


def _allocation(spec: group.Spec) -> dict[str, Any] | None:
    props = spec.properties
    alloc = props.get("Allocation") if isinstance(props, dict) else None
    return alloc if isinstance(alloc, dict) else None


def _scaled_size(held: tenure.Tenure, gid: group.ID) -> int | None:
    """The stored Allocation.Size of a scaled group; None for pets or other schemas."""
    if gid not in held.doc.groups:
        return None
    alloc = _allocation(held.doc.group_spec(gid))
    if alloc is None or alloc.get("LogicalIDs"):
        return None
    size = alloc.get("Size", 0)
    return size if isinstance(size, int) else None


def _resized(spec: group.Spec, size: int) -> group.Spec:
    props = dict(spec.properties)
    props["Allocation"] = {**(_allocation(spec) or {}), "Size": size}
    return spec.model_copy(update={"properties": props})
