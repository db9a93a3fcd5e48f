"""``infrakit up CONFIG``: run a manager, the group controller and the config's plugins in
one supervised process tree, and commit the config's groups (embedded mode, no etcd).

The work is in :mod:`infrakit.manager.embedded`; the config is described in
:mod:`infrakit.manager.config` (``examples/up.yml`` is one). It runs in the foreground until
Ctrl-C or SIGTERM, then frees the groups (instances stay) and stops the plugins it started.
"""

from __future__ import annotations

import click

from infrakit.cli import render
from infrakit.manager import embedded


@click.command("up")
@click.argument("config", metavar="CONFIG")
def command(config: str) -> None:
    """Run everything CONFIG names (YAML or JSON, Jinja2-rendered) until Ctrl-C.

    State lives under $INFRAKIT_HOME (default ~/.infrakit): the store in configs/, the
    leader lock in leader.lock, the plugins' sockets and logs in plugins/.
    """
    embedded.run(config, report=render.line)
