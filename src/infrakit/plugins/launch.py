"""Command-line plumbing shared by the plugin entry points (``infrakit-instance-file`` …).

Each plugin's ``run(argv)`` parses the original's flags with :func:`parse` (which also sets up
logging from the ``--log`` level), builds its object and hands it to ``infrakit.rpc.server.run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib

# InfraKit's --log is a logrus level: 0 panic, 1 fatal, 2 error, 3 warning, 4 info, 5 debug.
_LEVELS = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.ERROR, 3: logging.WARNING,
           4: logging.INFO, 5: logging.DEBUG}


def parse(argv: list[str] | None, *, prog: str, description: str, default_name: str,
          state: bool = False, notify: bool = False) -> argparse.Namespace:
    """Parse a plugin's flags (``--name``, ``--log``, and ``--dir`` when it keeps ``state``),
    then configure logging; ``args.dir`` defaults to :func:`state_dir` of ``default_name``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--name", default=default_name,
                        help=f"plugin name, i.e. the socket's file name (default {default_name})")
    parser.add_argument("--log", type=int, default=4, choices=range(6), metavar="0-5",
                        help="log level: 0 is least verbose, 5 is debug (default 4)")
    if state:
        parser.add_argument("--dir", type=pathlib.Path, default=state_dir(default_name),
                            help=f"state directory (default $INFRAKIT_HOME/{default_name} or "
                                 f"~/.infrakit/{default_name})")
    if notify:
        parser.add_argument("--notify", default="", metavar="GROUP",
                            help="group plugin to wake (Group.Wake) when an instance changes "
                                 "on its own (default: none; polling finds it)")
    args = parser.parse_args(argv)
    configure_logging(args.log)
    return args


def state_dir(name: str) -> pathlib.Path:
    """Plugin ``name``'s default files dir: ``$INFRAKIT_HOME/<name>`` or ``~/.infrakit/<name>``."""
    home = os.environ.get("INFRAKIT_HOME")
    return (pathlib.Path(home) if home else pathlib.Path.home() / ".infrakit") / name


def configure_logging(level: int) -> None:
    """Log to stderr at the Python level matching InfraKit's ``--log`` level."""
    logging.basicConfig(
        level=_LEVELS.get(level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
