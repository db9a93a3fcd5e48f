"""``infrakit-flavor-zookeeper``: the plugin as its own process, with v0.5's flags.

    infrakit-flavor-zookeeper [--name flavor-zookeeper] [--log 0-5] [--dir DIR]

``--dir`` (default ``$INFRAKIT_HOME/flavor-zookeeper``) keeps the key the super user's
passwords are derived from (:mod:`.secret`). kazoo's own logging (a line per session and
reconnection) is shown from ``--log 5`` only.
"""

from __future__ import annotations

import logging
import pathlib

from infrakit.plugins import launch
from infrakit.plugins.flavor.zookeeper import plugin

NAME = "flavor-zookeeper"


DEBUG = 5
"""The ``--log`` level from which kazoo's INFO lines are shown."""


async def serve(name: str, state: pathlib.Path) -> None:
    """Serve until SIGTERM or SIGINT; then stop watching for members to add."""
    from infrakit.rpc import server

    stop = server.stopping()
    served = plugin.Plugin(state)
    try:
        async with server.Server(name, flavor=served):
            await stop.wait()
    finally:
        await served.close()


def run(argv: list[str] | None = None) -> None:
    """Entry point: a start-up failure exits with one line."""
    args = launch.parse(argv, prog="infrakit-flavor-zookeeper",
                        description="ZooKeeper flavor plugin", default_name=NAME, state=True)
    if args.log < DEBUG:
        logging.getLogger("kazoo").setLevel(logging.WARNING)
    from infrakit.rpc import server

    server.main("infrakit-flavor-zookeeper", lambda: serve(args.name, args.dir))
