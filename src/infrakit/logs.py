"""Logging for our daemons and the CLI, at InfraKit's ``--log`` levels.

InfraKit's ``--log`` is a logrus level: 0 panic, 1 fatal, 2 error, 3 warning, 4 info,
5 debug. Every entry point (plugins, group plugin, manager, CLI) takes it the same way.
"""

from __future__ import annotations

import argparse
import logging

LEVELS = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.ERROR, 3: logging.WARNING,
          4: logging.INFO, 5: logging.DEBUG}
"""InfraKit's level → Python's."""

DEFAULT = 4


def add_flag(parser: argparse.ArgumentParser) -> None:
    """``--log 0-5`` on an entry point's parser."""
    parser.add_argument("--log", type=int, default=DEFAULT, choices=range(6), metavar="0-5",
                        help="log level: 0 is least verbose, 5 is debug (default 4)")


def configure(level: int) -> None:
    """Log to stderr at the Python level matching InfraKit's ``--log`` level."""
    logging.basicConfig(level=LEVELS.get(level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
