"""``infrakit-group-default``: the default group plugin as its own process.

``infrakit-group-default [--name group] [--poll-interval 10s] [--max-parallel N] [--log N]
[--manager NAME [--fence-interval 500ms]]`` serves a
:class:`~infrakit.group.controller.Controller` on ``<plugins dir>/<name>``; it finds the
instance and flavor plugins a group names in the same plugins dir.

Behind a manager (``infrakit-manager --proxy-for-group NAME``), ``--manager`` fences the
plugin (:class:`Fence`): every fence interval it asks that manager ``Manager.IsLeader``
(with the interval as timeout) and stands down as soon as the manager is gone, hung or not
the leader: it stops every mutating call in flight and every group's supervisor (instances
stay). Every mutating call (CommitGroup but a pretend one, FreeGroup, DestroyGroup,
DestroyInstances, SetSize, Pause, Resume, Abort) asks the manager first and is refused with
:class:`errors.NotLeaderError` unless it leads at that moment; reads and Wake stay open.
So a manager killed with ``kill -9`` or stopped with ``SIGSTOP`` leaves no controller behind
to race the next leader's, and nobody can act through the backend behind its back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from infrakit import durations, errors, logs, words
from infrakit.group import controller, rolling
from infrakit.rpc import discovery, listening, server
from infrakit.spi import group, instance, manager

log = logging.getLogger(__name__)

T = TypeVar("T")


class Managers(Protocol):
    """Where the fence finds its manager (the plugins dir: :class:`discovery.Plugins`)."""

    def manager(self, name: str) -> manager.Plugin: ...


class Fence:
    """The manager this plugin serves: does it lead now? (``--manager``)

    A mutating call runs through :meth:`act`; :meth:`stand_down` (from :meth:`run` when the
    manager does not lead) bumps :attr:`epoch`, so a call whose question was asked before
    it is refused even if the answer is yes, and cancels every call already acting. Both
    steps of a call (compare the epoch, register its task) happen without an ``await`` in
    between, so no call starts acting after a stand-down began on an earlier answer.
    """

    def __init__(self, manager: str, groups: controller.Controller, plugins: Managers, *,
                 interval: float) -> None:
        self.manager = manager
        self.groups = groups
        self.plugins = plugins
        self.interval = interval
        self.epoch = 0
        """Bumped by every stand-down: answers to questions asked before it do not count."""
        self.task: asyncio.Task[None] | None = None
        """The fence's loop while :meth:`watching`."""
        self._acting: set[asyncio.Task[Any]] = set()
        self._down = asyncio.Lock()

    async def leads(self) -> bool:
        """True when the manager answers, within the interval, that it leads."""
        try:
            async with asyncio.timeout(self.interval):
                return await self.plugins.manager(self.manager).is_leader()
        except (errors.InfrakitError, TimeoutError):
            return False

    async def act(self, what: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``work()``, the mutating call ``what`` (e.g. ``SetSize``), if the manager leads
        now; :class:`errors.NotLeaderError` if it does not, or stops leading meanwhile."""
        async with self._down:  # a stand-down in progress finishes first
            epoch = self.epoch
        if not await self.leads() or epoch != self.epoch:
            raise errors.NotLeaderError(
                f"fenced: manager {self.manager!r} is gone or does not lead, so this group "
                f"plugin does not act for it ({what} refused)", manager=self.manager)
        task = asyncio.create_task(work(), name=f"fenced {what}")
        self._acting.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if epoch == self.epoch or (current is not None and current.cancelling()):
                raise  # our caller went away: not the fence's doing
            raise errors.NotLeaderError(
                f"fenced: manager {self.manager!r} stopped leading while {what} was in "
                "flight; this group plugin stopped it part-way and supervises nothing now",
                manager=self.manager) from None
        finally:
            self._acting.discard(task)

    async def round(self) -> None:
        """One look: stand down unless the manager leads."""
        if not await self.leads():
            await self.stand_down()

    async def stand_down(self) -> None:
        """Stop every mutating call in flight, then every group's supervisor (instances
        stay); calls asked about before now are refused."""
        self.epoch += 1
        async with self._down:
            acting = list(self._acting)
            for task in acting:
                task.cancel()
            await asyncio.gather(*acting, return_exceptions=True)
            held = await self.groups.inspect_groups()
            await self.groups.close()
        if held or acting:
            log.warning("manager %s is gone or does not lead: stopped %s in flight "
                        "and supervising %s (instances stay)", self.manager,
                        words.plural(len(acting), "call"),
                        ", ".join(spec.id for spec in held) or "no group")

    async def run(self) -> None:
        """Stand down whenever the manager does not lead, every interval."""
        while True:
            try:
                await self.round()
            except Exception:  # the fence must outlive any one failed round
                log.exception("fence round failed")
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """:meth:`run` in a task for the duration of the block; over when the block is."""
        self.task = asyncio.create_task(self.run(), name=f"fence:{self.manager}")
        try:
            yield
        finally:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class Served:
    """The controller as the RPC layer sees it: ``Resume`` arrives as raw wire JSON, and a
    fenced plugin makes every mutating call through :meth:`Fence.act`."""

    def __init__(self, inner: controller.Controller, *, fence: Fence | None = None) -> None:
        self.inner = inner
        self.fence = fence

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None, version: str | None = None) -> str:
        state = rolling.UpdateState.from_wire(resume) if resume else None
        if pretend:
            return await self.inner.commit_group(spec, True, resume=state, version=version)
        return await self._fenced("CommitGroup", lambda: self.inner.commit_group(
            spec, False, resume=state, version=version))

    async def free_group(self, gid: group.ID) -> None:
        await self._fenced("FreeGroup", lambda: self.inner.free_group(gid))

    async def destroy_group(self, gid: group.ID) -> None:
        await self._fenced("DestroyGroup", lambda: self.inner.destroy_group(gid))

    async def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        await self._fenced("DestroyInstances",
                           lambda: self.inner.destroy_instances(gid, instances))

    async def set_size(self, gid: group.ID, size: int) -> None:
        await self._fenced("SetSize", lambda: self.inner.set_size(gid, size))

    async def pause(self, gid: group.ID) -> None:
        await self._fenced("Pause", lambda: self.inner.pause(gid))

    async def resume(self, gid: group.ID) -> None:
        await self._fenced("Resume", lambda: self.inner.resume(gid))

    async def abort(self, gid: group.ID) -> None:
        await self._fenced("Abort", lambda: self.inner.abort(gid))

    async def _fenced(self, what: str, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self.fence is None:
            return await work()
        return await self.fence.act(what, work)

    def __getattr__(self, name: str) -> Any:
        # Reads and Wake pass straight through.
        return getattr(self.inner, name)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="infrakit-group-default",
                                     description="The default group plugin.")
    parser.add_argument("--name", default="group", help="socket name (default group)")
    parser.add_argument("--poll-interval", default="10s", metavar="DURATION",
                        help="how often each group is reconciled, e.g. 500ms, 10s (default 10s)")
    parser.add_argument("--max-parallel", type=int, default=0, metavar="N",
                        help="most creations/removals at once across groups (0: no limit)")
    logs.add_flag(parser)
    parser.add_argument("--manager", default="", metavar="NAME",
                        help="act only while this manager leads (fencing; see above)")
    parser.add_argument("--fence-interval", default="500ms", metavar="DURATION",
                        help="how often --manager is asked whether it leads (default 500ms)")
    listening.add_flags(parser)
    args = parser.parse_args(argv)
    listening.configure(parser, args)
    return args


async def serve(name: str, *, poll_interval: float, max_parallel: int, manager: str = "",
                fence_interval: float = 0.5) -> None:
    plugins = discovery.Plugins()
    groups = controller.Controller(plugins.instance, plugins.flavor,
                                   poll_interval=poll_interval, max_parallel=max_parallel,
                                   standalone=not manager)
    fence = Fence(manager, groups, plugins, interval=fence_interval) if manager else None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with server.Server(name, group=Served(groups, fence=fence)), \
                fence.watching() if fence else contextlib.nullcontext():
            await stopping.wait()
    finally:
        await groups.close()  # stop supervising; the instances stay
        await plugins.close()


def run(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logs.configure(args.log)
    try:
        poll = durations.parse_duration(args.poll_interval, field="--poll-interval")
        if args.max_parallel < 0:
            raise errors.UsageError(f"--max-parallel must be 0 or more, got {args.max_parallel}")
        fence = durations.parse_duration(args.fence_interval, field="--fence-interval")
        if fence <= 0:
            raise errors.UsageError(f"--fence-interval must be positive, got {args.fence_interval}")
        asyncio.run(serve(args.name, poll_interval=poll, max_parallel=args.max_parallel,
                          manager=args.manager, fence_interval=fence))
    except errors.InfrakitError as exc:
        print(f"infrakit-group-default: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    run()
