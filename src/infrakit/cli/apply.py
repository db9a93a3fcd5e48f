"""``infrakit apply CONFIG``: commit the groups of an ``infrakit up`` config to the running
``up``, without restarting it.

CONFIG is read and checked as ``infrakit up`` reads it (:mod:`infrakit.manager.config`); each
group it names is committed, in order, to the manager socket ``Manager.Name`` (``group`` by
default), printing the lines ``infrakit manager commit`` prints. Its ``Plugins`` are not
started or stopped: that takes a restart of ``up``. The next start of ``up`` sees the
commits in the store's history, so it counts them as applications of the file.
"""

from __future__ import annotations

import click

from infrakit import errors
from infrakit.cli import group as group_cli
from infrakit.cli import remote, render
from infrakit.manager import config as up_config
from infrakit.rpc import discovery
from infrakit.spi import group


@click.command("apply")
@click.argument("source", metavar="CONFIG")
@click.option("--pretend", is_flag=True, help="Only say what each commit would do.")
@click.pass_context
def command(ctx: click.Context, source: str, pretend: bool) -> None:
    """Commit every group of CONFIG (an `infrakit up` config) to the running `infrakit up`."""
    settings = up_config.load(source)
    target = remote.bind(ctx, settings.manager.name)
    _reach(target, source=source)
    for spec in settings.groups:
        answer = target.call("Group.CommitGroup", group.CommitRequest(spec=spec, pretend=pretend),
                             group.CommitResponse, needs=group_cli.NEEDS)
        verb = "Committing {} would involve" if pretend else "Committed {}"
        render.line(f"{verb.format(spec.id)}: {answer.details}")


def _reach(target: remote.Target, *, source: str) -> None:
    """The handshake; an ``up`` that is not running is one line saying how to start it."""
    try:
        target.implements()
    except (errors.PluginNotFound, errors.Unavailable) as exc:
        path = discovery.plugins_dir() / discovery.Name.parse(target.name).lookup
        why = "no socket" if isinstance(exc, errors.PluginNotFound) else "it does not answer"
        raise type(exc)(f"no `infrakit up` answers as {target.name!r} at {path} ({why}); "
                        f"start it with `infrakit up {source}`", plugin=target.name) from None
