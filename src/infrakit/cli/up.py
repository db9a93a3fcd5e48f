"""``infrakit up CONFIG``: run a manager, the group controller and the config's plugins in
one supervised process tree, and commit the config's groups (embedded mode, no etcd).

The work is in :mod:`infrakit.manager.embedded`; the config is described in
:mod:`infrakit.manager.config` (``examples/up.yml`` is one). It runs in the foreground until
Ctrl-C or SIGTERM, then frees the groups (instances stay) and stops the plugins it started.
A restart keeps what changed in the store since the file was last applied and says so per
group; ``--apply`` commits the file anyway. ``infrakit apply`` (:mod:`.apply`) commits the
file to a running ``up``.
"""

from __future__ import annotations

import click

from infrakit.cli import render
from infrakit.manager import embedded


@click.command("up")
@click.argument("config", metavar="CONFIG")
@click.option("--apply", "apply_file", is_flag=True,
              help="Commit every group of CONFIG, even where the store changed since CONFIG "
                   "was last applied (set-size, rollback, a commit).")
def command(config: str, apply_file: bool) -> None:
    """Run everything CONFIG names (YAML or JSON, Jinja2-rendered) until Ctrl-C.

    State lives under $INFRAKIT_HOME (default ~/.infrakit): the store in configs/, the
    leader lock in leader.lock, the plugins' sockets and logs in plugins/. On a restart a
    group the store changed since CONFIG was last applied keeps the store's spec (one line
    says so); a group whose spec changed only in CONFIG gets it.
    """
    embedded.run(config, report=render.line, apply_file=apply_file)
