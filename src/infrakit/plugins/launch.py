"""Command-line plumbing shared by the plugin entry points (``infrakit-instance-file`` …).

Each plugin's ``run(argv)`` parses the original's flags with :func:`parse` (which also sets up
logging from the ``--log`` level), builds its object and hands it to ``infrakit.rpc.server.run``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
from collections.abc import Callable

from infrakit import errors, logs
from infrakit.rpc import listening

log = logging.getLogger(__name__)


def parse(argv: list[str] | None, *, prog: str, description: str, default_name: str,
          state: bool = False, notify: bool = False,
          flags: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Parse a plugin's flags (``--name``, ``--log``, ``--dir`` when it keeps ``state``,
    ``--notify GROUP`` when it can wake one, and what ``flags`` adds of its own), then
    configure logging; ``args.dir`` defaults to :func:`state_dir` of ``default_name``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--name", default=default_name,
                        help=f"plugin name, i.e. the socket's file name (default {default_name})")
    logs.add_flag(parser)
    if state:
        parser.add_argument("--dir", type=pathlib.Path, default=state_dir(default_name),
                            help=f"state directory (default $INFRAKIT_HOME/{default_name} or "
                                 f"~/.infrakit/{default_name})")
    if notify:
        parser.add_argument("--notify", default="", metavar="GROUP",
                            help="group plugin to wake (Group.Wake) when an instance changes "
                                 "on its own (default: none; polling finds it)")
    if flags is not None:
        flags(parser)
    listening.add_flags(parser)
    args = parser.parse_args(argv)
    logs.configure(args.log)
    listening.configure(parser, args)
    return args


def state_dir(name: str) -> pathlib.Path:
    """Plugin ``name``'s default files dir: ``$INFRAKIT_HOME/<name>`` or ``~/.infrakit/<name>``."""
    home = os.environ.get("INFRAKIT_HOME")
    return (pathlib.Path(home) if home else pathlib.Path.home() / ".infrakit") / name


def group_waker(group_plugin: str) -> Callable[[], None]:
    """A callback that tells ``group_plugin`` ``Group.Wake``: something changed behind the
    plugin's back, look now rather than at the next poll. Best effort: polling remains the
    fallback, so a failure is only logged. Safe to call from any thread (it blocks)."""
    from infrakit.rpc import discovery, sync

    def wake() -> None:
        try:
            sync.Client(discovery.find(group_plugin), timeout=2.0).call("Group.Wake", {})
        except errors.InfrakitError as exc:
            log.debug("could not wake %s: %s", group_plugin, exc.message)

    return wake


def namespace_tags(values: list[str]) -> dict[str, str]:
    """``["a=b,c=d", "e=f"]`` → ``{"a": "b", "c": "d", "e": "f"}``."""
    tags = {}
    for value in values:
        for item in filter(None, value.split(",")):
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise errors.UsageError(f"--namespace-tags: expected key=value, got {item!r}")
            tags[key.strip()] = text.strip()
    return tags
