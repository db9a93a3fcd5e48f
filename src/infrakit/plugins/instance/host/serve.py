"""``infrakit-instance-host``: serve hosts on one machine (see the package docstring)."""

from __future__ import annotations

import argparse
import ipaddress
import shutil
import sys

from infrakit import errors
from infrakit.plugins import launch

NETWORK = "10.77.0.0/24"


def flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", type=ipaddress.IPv4Network, default=NETWORK,
                        help=f"the hosts' private network (default {NETWORK}); its first "
                             "address is the switch's")
    parser.add_argument("--switch", default="",
                        help="name of the switch's network namespace (default ikh-<name>)")


def run(argv: list[str] | None = None) -> None:
    """``infrakit-instance-host [--name instance-host] [--dir D] [--network CIDR] [--switch NS]
    [--notify GROUP] [--log 0-5]``. Needs root (namespaces) and iproute2 and util-linux."""
    args = launch.parse(argv, prog="infrakit-instance-host",
                        description="Hosts on one machine: namespaces on a private network",
                        default_name="instance-host", state=True, notify=True, flags=flags)
    missing = [tool for tool in ("ip", "nsenter", "unshare") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"infrakit-instance-host: {', '.join(missing)} not found: install Debian's "
                 "iproute2 and util-linux")
    from infrakit.plugins.instance.host import plugin
    from infrakit.rpc import server

    try:
        hosts = plugin.Plugin(args.dir, network_=args.network,
                              switch=args.switch or f"ikh-{args.name}"[:40],
                              on_change=launch.group_waker(args.notify) if args.notify else None)
    except errors.InfrakitError as exc:
        sys.exit(f"infrakit-instance-host: {exc.message}")
    server.run(args.name, instance=hosts)
