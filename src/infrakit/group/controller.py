"""The default group plugin: ``spi.group.Plugin`` over one supervisor per committed group.

Served as the ``group`` plugin (``infrakit-group-default``) and used in-process by tests.
Beyond the Group interface it offers ``pause``/``resume``/``abort`` (rolling-update
control), ``wake`` (a plugin says something changed: reconcile now), ``status`` (the
group's phase and the reasons for its recent actions) and ``close`` (stop supervising
everything, leave every instance). For failover, ``on_state`` receives each group's
rolling-update state as it changes and ``commit_group(..., resume=state)`` continues it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from infrakit import errors
from infrakit.group import actions, config, plan, rolling, supervisor
from infrakit.group import status as status_
from infrakit.group.clock import Clock, RealClock
from infrakit.group.target import Target, make, resized
from infrakit.spi import flavor, group, instance

STANDALONE_HINT = (
    " by this group plugin (it keeps groups only in memory; they are kept across restarts "
    "by a manager or `infrakit up`): commit it again, or run a manager")
"""How a standalone group plugin's "not being watched" goes on: groups it lost in a
restart are not coming back by themselves."""


class Controller:
    """Keeps every committed group at its declared state."""

    def __init__(self, instance_plugins: Callable[[str], instance.Plugin],
                 flavor_plugins: Callable[[str], flavor.Plugin], *,
                 poll_interval: float = 10.0, max_parallel: int = 0,
                 clock: Clock | None = None,
                 on_state: supervisor.OnState | None = None,
                 rng: random.Random | None = None, standalone: bool = False) -> None:
        """``instance_plugins``/``flavor_plugins`` resolve plugin names to plugins (RPC
        proxies or local objects); ``max_parallel`` bounds concurrent creations and
        removals across groups (0: no limit); ``on_state`` persists rolling-update state;
        ``standalone``: no manager stands in front (``infrakit-group-default`` without
        ``--manager``), so a group asked about and not known may be one lost in a restart:
        the error says so.
        """
        if poll_interval <= 0:
            raise errors.InvalidError(f"poll_interval must be positive, got {poll_interval}",
                                      field="poll_interval")
        if max_parallel < 0:
            raise errors.InvalidError(f"max_parallel must be 0 (no limit) or more, got "
                                      f"{max_parallel}", field="max_parallel")
        self._plugins = actions.Plugins(instance=instance_plugins, flavor=flavor_plugins)
        self._clock = clock if clock is not None else RealClock()
        self._poll = poll_interval
        self._limiter = asyncio.Semaphore(max_parallel) if max_parallel else None
        self._workers = max_parallel or supervisor.WORKERS
        self._on_state = on_state
        self._rng = rng if rng is not None else random.Random()
        self._standalone = standalone
        self._groups: dict[str, supervisor.Supervisor] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # spi.group.Plugin ----------------------------------------------------------------

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: rolling.UpdateState | None = None,
                           version: str | None = None) -> str:
        """Validate (ID, Properties, Allocation, flavor, instance: in that order), then
        start or re-plan the group; return the plan's text. ``pretend`` changes nothing.
        ``resume``: a state saved by ``on_state`` (rolling update, crash-loop counts; used
        when its target is this spec's config). ``version``: the spec's version label
        (e.g. the manager's history number), named in action reasons and member rows.
        """
        target = make(spec)
        props = target.props
        await self._plugins.flavor(props.flavor.plugin).validate(
            props.flavor.properties, props.allocation)
        await self._plugins.instance(props.instance.plugin).validate(props.instance.properties)
        async with self._lock(target.gid):
            current = self._groups.get(target.gid)
            if current is None:
                if not pretend:
                    self._start(target, resume, version=version)
                return plan.plan(None, props, members=[], sha=target.sha).explain()
            members = await actions.list_members(self._plugins, target.gid, props)
            text = plan.plan(current.target.props, props, members=members, sha=target.sha,
                             previous_raw=current.target.spec.properties,
                             desired_raw=spec.properties).explain()
            if not pretend:
                await current.retarget(target, resume=resume, version=version)
                if current.destroying:  # a failed DestroyGroup is given up by a new commit
                    current.destroying = False
                    current.start()
            return text

    async def free_group(self, gid: group.ID) -> None:
        """Stop supervising the group; its instances stay."""
        async with self._lock(gid):
            await self._need(gid).stop()
            del self._groups[gid]

    async def describe_group(self, gid: group.ID) -> group.Description:
        """The members now, Converged, and (ext) the status with its reasons."""
        return await self._need(gid).describe()

    async def destroy_group(self, gid: group.ID) -> None:
        """Drain and destroy every member, then forget the group."""
        async with self._lock(gid):
            await self._need(gid).destroy_all()
            del self._groups[gid]

    async def inspect_groups(self) -> list[group.Spec]:
        """The specs of every group, as committed."""
        return [sup.target.spec for sup in self._groups.values()]

    async def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        """Drain and destroy these members (even protected ones); a scaled group shrinks
        by as many, a quorum group recreates them for their logical IDs."""
        await self._need(gid).destroy_members(instances)

    async def size(self, gid: group.ID) -> int:
        """The declared size (the number of logical IDs for pets)."""
        return self._need(gid).target.props.size

    async def set_size(self, gid: group.ID, size: int) -> None:
        """Change a scaled group's size (as a commit of the same spec with a new Size)."""
        if size < 0:
            raise errors.InvalidError(f"size must be 0 or more, got {size}", field="Size")
        async with self._lock(gid):
            sup = self._need(gid)
            if sup.target.props.logical_ids is not None:
                raise errors.InvalidError(
                    f"group '{gid}' allocates by LogicalIDs; commit a new list to resize it",
                    field="Size")
            config.check_size(sup.target.props, size)
            await sup.retarget(resized(sup.target, size), resume=None)

    # Extensions ----------------------------------------------------------------------

    async def pause(self, gid: group.ID) -> None:
        """Pause the group's rolling update (ConflictError when none is in flight)."""
        await self._need(gid).pause()

    async def resume(self, gid: group.ID) -> None:
        """Continue a paused or aborted rolling update."""
        await self._need(gid).resume()

    async def abort(self, gid: group.ID) -> None:
        """Give the rolling update up; members keep their configs until the next commit."""
        await self._need(gid).abort()

    async def wake(self, gid: group.ID | None = None) -> None:
        """Reconcile the group (every group when ``None``) now rather than at the next poll."""
        targets = [self._need(gid)] if gid else list(self._groups.values())
        for sup in targets:
            sup.wake()

    async def status(self, gid: group.ID) -> status_.Status:
        """The group's phase, its reason, its rolling update and its recent actions."""
        return self._need(gid).status()

    async def close(self) -> None:
        """Stop supervising every group (leadership lost, shutdown); instances stay."""
        groups, self._groups = list(self._groups.values()), {}
        await asyncio.gather(*(sup.stop() for sup in groups))

    # Helpers -------------------------------------------------------------------------

    def _start(self, target: Target, resume: rolling.UpdateState | None, *,
               version: str | None) -> None:
        sup = supervisor.Supervisor(
            target, plugins=self._plugins, source=self._clock, poll_interval=self._poll,
            limiter=self._limiter, workers=self._workers, on_state=self._on_state,
            rng=self._rng, update=resume, version=version)
        self._groups[target.gid] = sup
        sup.start()

    def _need(self, gid: str) -> supervisor.Supervisor:
        found = self._groups.get(gid)
        if found is None:
            raise errors.NotFoundError(f"Group '{gid}' is not being watched" + (
                STANDALONE_HINT if self._standalone else ""), group=gid)
        return found

    def _lock(self, gid: str) -> asyncio.Lock:
        return self._locks.setdefault(gid, asyncio.Lock())
