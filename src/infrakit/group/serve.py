"""``infrakit-group-default``: the default group plugin as its own process.

``infrakit-group-default [--name group] [--poll-interval 10s] [--max-parallel N] [--log N]``
serves a :class:`~infrakit.group.controller.Controller` on ``<plugins dir>/<name>``; it finds
the instance and flavor plugins a group names in the same plugins dir.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from infrakit import durations, errors
from infrakit.group import controller, rolling
from infrakit.rpc import discovery, server
from infrakit.spi import group

# InfraKit's --log is a logrus level: 0 panic, 1 fatal, 2 error, 3 warning, 4 info, 5 debug.
_LEVELS = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.ERROR, 3: logging.WARNING,
           4: logging.INFO, 5: logging.DEBUG}


class Served:
    """The controller as the RPC layer sees it: ``Resume`` arrives as raw wire JSON."""

    def __init__(self, inner: controller.Controller) -> None:
        self.inner = inner

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None) -> str:
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
    parser.add_argument("--log", type=int, default=4, choices=range(6), metavar="0-5",
                        help="log level: 0 is least verbose, 5 is debug (default 4)")
    return parser.parse_args(argv)


async def serve(name: str, *, poll_interval: float, max_parallel: int) -> None:
    plugins = discovery.Plugins()
    groups = controller.Controller(plugins.instance, plugins.flavor,
                                   poll_interval=poll_interval, max_parallel=max_parallel)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with server.Server(name, group=Served(groups)):
            await stopping.wait()
    finally:
        await groups.close()  # stop supervising; the instances stay
        await plugins.close()


def run(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=_LEVELS[args.log],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        poll = durations.parse_duration(args.poll_interval, field="--poll-interval")
        if args.max_parallel < 0:
            raise errors.UsageError(f"--max-parallel must be 0 or more, got {args.max_parallel}")
        asyncio.run(serve(args.name, poll_interval=poll, max_parallel=args.max_parallel))
    except errors.InfrakitError as exc:
        print(f"infrakit-group-default: {exc.message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
