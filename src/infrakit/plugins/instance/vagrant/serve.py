"""``infrakit-instance-vagrant``: the plugin as its own process, with v0.5's flags and more.

    infrakit-instance-vagrant [--name instance-vagrant] [--log 0-5] [--dir D]
        [--template FILE|URL] [--vagrant PATH] [--max-parallel 4]
        [--up-timeout 15m] [--destroy-timeout 5m] [--status-timeout 1m]

``--dir`` holds one directory per machine (v0.5 defaulted to the working directory; ours is
``$INFRAKIT_HOME/instance-vagrant``). ``--template`` replaces the built-in Vagrantfile
template (a path or a ``file://``/``http(s)://`` URL, read once at start). A missing
``vagrant`` or an unreadable template stops the start with one line saying why.
"""

from __future__ import annotations

import argparse
import shutil

from infrakit import durations, errors
from infrakit.plugins import launch
from infrakit.plugins.instance.vagrant import commands, plugin, template

NAME = "instance-vagrant"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags, parsed and checked; logging is set up from ``--log``."""
    def own(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--template", default="", metavar="FILE|URL",
                            help="Vagrantfile template (Jinja; v0.5's {{.Field}} references "
                                 "read too); default: the built-in one")
        parser.add_argument("--vagrant", default="vagrant", metavar="PATH",
                            help="the vagrant program (default: vagrant on PATH)")
        parser.add_argument("--max-parallel", type=int, default=4, metavar="N",
                            help="vagrant runs at once, of up/destroy and of status each "
                                 "(default 4)")
        for flag, default in (("--up-timeout", "15m"), ("--destroy-timeout", "5m"),
                              ("--status-timeout", "1m")):
            parser.add_argument(flag, default=default, metavar="DURATION",
                                help=f"how long one vagrant {flag[2:].split('-')[0]} may run "
                                     f"(default {default})")

    args = launch.parse(argv, prog="infrakit-instance-vagrant",
                        description="Vagrant machine instance plugin", default_name=NAME,
                        state=True, flags=own)
    if args.max_parallel < 1:
        raise errors.UsageError(f"--max-parallel: expected at least 1, got {args.max_parallel}")
    args.timeouts = commands.Timeouts(
        up=durations.parse_duration(args.up_timeout, field="--up-timeout"),
        destroy=durations.parse_duration(args.destroy_timeout, field="--destroy-timeout"),
        status=durations.parse_duration(args.status_timeout, field="--status-timeout"))
    if shutil.which(args.vagrant) is None:
        raise errors.PermanentError(f"{args.vagrant} not found: {commands.INSTALL}")
    args.vagrantfile = template.load(args.template)
    return args


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    from infrakit.rpc import server

    served = plugin.Plugin(args.dir, name=args.name, template=args.vagrantfile,
                           vagrant=commands.Vagrant(args.vagrant, parallel=args.max_parallel,
                                                    timeouts=args.timeouts))
    stop = server.stopping()
    try:
        async with server.Server(args.name, instance=served):
            await stop.wait()
    finally:
        await served.close()


def run(argv: list[str] | None = None) -> None:
    """Entry point: a start-up failure exits with one line."""
    from infrakit.rpc import server

    server.main("infrakit-instance-vagrant", lambda: serve(parse(argv)))
