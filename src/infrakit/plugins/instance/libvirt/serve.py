"""``infrakit-instance-libvirt``: the plugin as a process (v0.5's name and flags, and more).

    infrakit-instance-libvirt [--uri qemu:///session] [--name instance-libvirt] [--log 0-5]
                              [--dir D] [--notify GROUP]

``--dir`` holds each instance's own files (overlay, Init seed, console log); with
``qemu:///system`` it must be a dir the hypervisor's user can reach. ``--notify`` wakes that
group plugin when a guest stops on its own (libvirt's lifecycle events), so that healing does
not wait for the next poll.
"""

from __future__ import annotations

import argparse

from infrakit.plugins import launch
from infrakit.plugins.instance.libvirt import plugin

NAME = "instance-libvirt"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags, parsed; logging is set up from ``--log``."""
    def own(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--uri", default=plugin.DEFAULT_URI,
                            help=f"libvirt connection URI (default {plugin.DEFAULT_URI})")

    return launch.parse(argv, prog="infrakit-instance-libvirt",
                        description="Virtual machines through libvirt", default_name=NAME,
                        state=True, notify=True, flags=own)


def run(argv: list[str] | None = None) -> None:
    """Serve the plugin until SIGTERM."""
    args = parse(argv)
    served = plugin.Plugin(args.dir, uri=args.uri,
                           on_change=launch.group_waker(args.notify) if args.notify else None)

    # Imported here: in-process users of the plugin do not need the server.
    from infrakit.rpc import server

    try:
        server.run(args.name, instance=served)
    finally:
        served.close()
