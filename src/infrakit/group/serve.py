"""``infrakit-group-default``: the default group plugin as its own process.

``infrakit-group-default [--name group] [--poll-interval 10s] [--max-parallel N] [--log N]
[--manager NAME [--fence-interval 500ms]]`` serves a
:class:`~infrakit.group.controller.Controller` on ``<plugins dir>/<name>``; it finds the
instance and flavor plugins a group names in the same plugins dir.

Behind a manager (``infrakit-manager --proxy-for-group NAME``), ``--manager`` fences the
plugin: every fence interval it asks that manager ``Manager.IsLeader`` (with the interval
as timeout) and stops supervising every group (instances stay) as soon as the manager is
gone, hung or not the leader; a commit is refused unless the manager leads at that moment.
So a manager killed with ``kill -9`` leaves no controller behind to race the next leader's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from infrakit import durations, errors, logs
from infrakit.group import controller, rolling
from infrakit.rpc import discovery, server
from infrakit.spi import group

log = logging.getLogger(__name__)



class Fence:
    """The manager this plugin serves: does it lead now? (``--manager``)"""

    def __init__(self, manager: str, groups: controller.Controller,
                 plugins: discovery.Plugins, *, interval: float) -> None:
        self.manager = manager
        self.groups = groups
        self.plugins = plugins
        self.interval = interval

    async def leads(self) -> bool:
        """True when the manager answers, within the interval, that it leads."""
        try:
            async with asyncio.timeout(self.interval):
                return await self.plugins.manager(self.manager).is_leader()
        except (errors.InfrakitError, TimeoutError):
            return False

    async def check(self) -> None:
        """:class:`errors.NotLeaderError` unless the manager leads now."""
        if not await self.leads():
            raise errors.NotLeaderError(
                f"fenced: manager {self.manager!r} is gone or does not lead, so this group "
                "plugin does not act for it")

    async def run(self) -> None:
        """Stop supervising (instances stay) whenever the manager does not lead."""
        while True:
            try:
                if not await self.leads():
                    await self._stand_down()
            except Exception:  # the fence must outlive any one failed round
                log.exception("fence round failed")
            await asyncio.sleep(self.interval)

    async def _stand_down(self) -> None:
        held = await self.groups.inspect_groups()
        if held:
            log.warning("manager %s is gone or does not lead: stopped supervising %s "
                        "(instances stay)", self.manager, ", ".join(spec.id for spec in held))
            await self.groups.close()


class Served:
    """The controller as the RPC layer sees it: ``Resume`` arrives as raw wire JSON, and a
    fenced plugin commits only while its manager leads."""

    def __init__(self, inner: controller.Controller, *, fence: Fence | None = None) -> None:
        self.inner = inner
        self.fence = fence

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None) -> str:
        if self.fence is not None and not pretend:
            await self.fence.check()
        state = rolling.UpdateState.from_wire(resume) if resume else None
        return await self.inner.commit_group(spec, pretend, resume=state)

    def __getattr__(self, name: str) -> Any:
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
    return parser.parse_args(argv)


async def serve(name: str, *, poll_interval: float, max_parallel: int, manager: str = "",
                fence_interval: float = 0.5) -> None:
    plugins = discovery.Plugins()
    groups = controller.Controller(plugins.instance, plugins.flavor,
                                   poll_interval=poll_interval, max_parallel=max_parallel)
    fence = Fence(manager, groups, plugins, interval=fence_interval) if manager else None
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with server.Server(name, group=Served(groups, fence=fence)):
            watching = asyncio.create_task(fence.run(), name="fence") if fence else None
            await stopping.wait()
            if watching is not None:
                watching.cancel()
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
