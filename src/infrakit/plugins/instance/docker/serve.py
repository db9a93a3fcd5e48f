"""``infrakit-instance-docker``: the plugin as its own process, with the original's flags.

    infrakit-instance-docker [--name instance-docker] [--log 0-5]
        [--url unix:///var/run/docker.sock] [--version 1.25] [--retries 5]
        [--namespace-tags k=v,...] [--notify GROUP]

``--retries`` is accepted for drop-in use and, as in the original, unused (the group
retries with backoff). ``--notify GROUP`` wakes that group plugin (``Group.Wake``) when a
member container dies, from the engine's event stream (:mod:`.events`). An engine that is
down at start is not fatal: calls fail with ``TemporaryError`` until it is up, and the event
stream connects when it is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from infrakit.plugins import launch
from infrakit.plugins.instance.docker import engine, events, plugin

log = logging.getLogger(__name__)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags (logging set up from ``--log``); ``UsageError`` for a malformed namespace
    tag."""
    def own(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=engine.DEFAULT_URL,
                            help=f"Docker API endpoint (default {engine.DEFAULT_URL})")
        parser.add_argument("--version", default=engine.DEFAULT_VERSION,
                            help=f"Docker API version (default {engine.DEFAULT_VERSION})")
        parser.add_argument("--retries", type=int, default=5,
                            help="accepted for compatibility with v0.5; unused")
        parser.add_argument("--namespace-tags", action="append", default=[],
                            metavar="K=V,...",
                            help="tags put on every container and required of every one listed")

    args = launch.parse(argv, prog="infrakit-instance-docker",
                        description="Docker container instance plugin",
                        default_name="instance-docker", notify=True, flags=own)
    args.namespace = launch.namespace_tags(args.namespace_tags)
    return args


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT; with ``--notify``, watch the engine's events too."""
    from infrakit.rpc import server

    docker = engine.Engine(args.url, version=args.version)
    served = plugin.Plugin(docker, name=args.name, namespace=args.namespace)
    waker = events.Waker(launch.group_waker(args.notify)) if args.notify else None
    stop = server.stopping()
    async with server.Server(args.name, instance=served):
        watcher = None
        if waker is not None:
            watcher = asyncio.create_task(events.watch(docker, waker, namespace=args.namespace,
                                                       ignore=served.destroying))
        try:
            await stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if waker is not None:
                await waker.close()


def run(argv: list[str] | None = None) -> None:
    """Entry point: a start-up failure exits with one line."""
    from infrakit.rpc import server

    server.main("infrakit-instance-docker", lambda: serve(parse(argv)))
