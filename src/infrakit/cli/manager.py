"""``infrakit manager [--name group] commit|inspect|leader|history|rollback``.

``commit FILE`` reads a list of ``{Plugin, Properties}`` (Properties: a group Spec) and,
as InfraKit's CLI does, commits each group to the plugin its entry names (``--name`` when
the entry names none), printing ``Committed <id>: <details>``. The other verbs ask the
manager ``--name``; a standby answers by forwarding to the leader. ``leader``, ``history``
and ``rollback`` call the manager's extensions (``Manager.LeaderInfo``, ``.History``,
``.Rollback``); ``leader`` asked of a leader whose take-over is not done adds its
``Status`` ("taking over: 2 of 3 groups committed; last error: ...; next try in 4s"), and
the other verbs then fail at once with that reason.
"""

from __future__ import annotations

import json

import click
import pydantic

from infrakit import errors, validation
from infrakit.cli import inputs, named, options, remote, render
from infrakit.manager import methods, store
from infrakit.spi import group, manager, plugin

DEFAULT_NAME = "group"
NEEDS_GROUP = (group.INTERFACE_1_1, group.INTERFACE)
NEEDS_MANAGER = (manager.INTERFACE,)
HISTORY_WIDTHS = (8, 22, 20)

_SPECS = pydantic.TypeAdapter(list[plugin.Spec])


@click.command("commit")
@options.document()
@click.option("--pretend", is_flag=True, help="Only say what would happen.")
@options.yaml_input
@click.pass_context
def commit(ctx: click.Context, file: str, pretend: bool, as_yaml: bool) -> None:
    """Commit every group in FILE, a list of {Plugin, Properties: group Spec}."""
    source = inputs.STDIN if file == "-" else file
    entries = _entries(inputs.read(file, as_yaml=as_yaml), source=source)
    fallback = remote.target(ctx)
    for entry, spec in entries:
        target = remote.Target(entry.plugin, timeout=fallback.timeout) if entry.plugin \
            else fallback
        answer = target.call("Group.CommitGroup", group.CommitRequest(spec=spec, pretend=pretend),
                             group.CommitResponse, needs=NEEDS_GROUP)
        verb = "Committing {} would involve" if pretend else "Committed {}"
        render.line(f"{verb.format(spec.id)}: {answer.details}")


def _entries(data: object, *, source: str) -> list[tuple[plugin.Spec, group.Spec]]:
    try:
        specs = _SPECS.validate_python(data)
    except pydantic.ValidationError as exc:
        raise errors.InvalidError(f"{source}: expected a list of {{Plugin, Properties}}: "
                                  f"{_first_problem(exc)}") from None
    found = []
    for index, entry in enumerate(specs):
        where = f"{source}: [{index}].Properties: not a valid group Spec"
        found.append((entry, inputs.as_model(group.Spec, entry.properties, where=where)))
    return found


def _first_problem(exc: pydantic.ValidationError) -> str:
    return validation.describe(exc)


@click.command("inspect")
@options.output(default="json", choices=("json", "yaml"))
@click.pass_context
def inspect(ctx: click.Context, output: str) -> None:
    """Every group the manager keeps, as {Plugin, Properties} (the input of commit)."""
    target = remote.target(ctx)
    answer = target.call("Group.InspectGroups", group.Empty(), group.InspectResponse,
                         needs=NEEDS_GROUP)
    render.document([plugin.Spec(plugin=target.name, properties=spec.to_wire()).to_wire()
                     for spec in answer.groups or []], output)


@click.command("leader")
@options.output()
@click.pass_context
def leader(ctx: click.Context, output: str) -> None:
    """Who leads, since when, its lease (etcd), and a take-over not done yet."""
    answer = remote.target(ctx).call("Manager.LeaderInfo", group.Empty(),
                                     methods.LeaderInfoResponse, needs=NEEDS_MANAGER)
    if output != "table":
        render.document(answer.to_wire(), output)
        return
    info = answer.leader
    since = render.iso(info.since) if info.since else "-"
    lease = f"{info.lease} ({info.ttl:g}s left)" if info.lease else "-"
    role = "leader" if answer.is_leader else "standby"
    for label, value in (("Leader", info.name or "(none)"), ("URL", info.url or "-"),
                         ("Since", since), ("Lease", lease), ("Backend", info.backend),
                         ("Asked", f"{answer.manager} ({role})")):
        render.line(f"{label + ':':<9}{value}")
    if answer.take_over is not None and answer.take_over.phase != "done":
        render.line(f"{'Status:':<9}{answer.take_over.summary}")


@click.command("history")
@click.argument("gid", metavar="ID")
@options.output()
@click.pass_context
def history(ctx: click.Context, gid: str, output: str) -> None:
    """The last committed specs of group ID, oldest first."""
    answer = remote.target(ctx).call("Manager.History", group.IDRequest(id=group.ID(gid)),
                                     methods.HistoryResponse, needs=NEEDS_MANAGER)
    if output != "table":
        render.document([entry.to_wire() for entry in answer.entries], output)
        return
    render.table(["VERSION", "TIME", "PLUGIN", "ALLOCATION"],
                 [_history_row(entry) for entry in answer.entries], widths=HISTORY_WIDTHS)


def _history_row(entry: store.HistoryEntry) -> list[str]:
    spec = entry.spec.properties if isinstance(entry.spec.properties, dict) else {}
    props = spec.get("Properties")
    allocation = props.get("Allocation") if isinstance(props, dict) else None
    return [str(entry.version), render.iso(entry.time), entry.spec.plugin,
            json.dumps(allocation, separators=(",", ":")) if allocation is not None else "-"]


@click.command("rollback")
@click.argument("gid", metavar="ID")
@click.option("--to", "version", type=click.IntRange(min=1), default=None, metavar="N",
              help="The version to commit again (default: the one before the newest).")
@click.pass_context
def rollback(ctx: click.Context, gid: str, version: int | None) -> None:
    """Commit an earlier spec of group ID again (see `history`)."""
    answer = remote.target(ctx).call("Manager.Rollback",
                                     methods.RollbackRequest(id=group.ID(gid), to=version),
                                     methods.RollbackResponse, needs=NEEDS_MANAGER)
    render.line(f"Rolled back {gid} to version {answer.version}: {answer.details}")


VERBS = (commit, inspect, leader, history, rollback)


command = named.plugin_group(
    "manager", summary="Access the manager: commit groups, see who leads, history and rollback.",
    verbs=VERBS, default=DEFAULT_NAME, metavar="NAME")
