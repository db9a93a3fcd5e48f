"""``infrakit group [--name group] VERB`` and the Group verbs of ``infrakit P VERB``.

The lines scripts compare are exactly the original's: ``Committed <id>: <details>``,
``Committing <id> would involve: <details>``, ``Freed <id>``, ``Destroy <id> initiated``.
``pause``, ``resume`` and ``abort`` call our Group extensions (rolling-update control).
"""

from __future__ import annotations

import concurrent.futures

import click

from infrakit import errors
from infrakit.cli import (
    confirm,
    follow,
    inputs,
    named,
    options,
    progress,
    remote,
    render,
    times,
    watch,
)
from infrakit.spi import group, instance

DEFAULT_NAME = "group"
NEEDS = (group.INTERFACE_1_1, group.INTERFACE)
NEEDS_1_1 = (group.INTERFACE_1_1,)


def _call_id(ctx: click.Context, method: str, gid: str) -> None:
    remote.target(ctx).call(method, group.IDRequest(id=group.ID(gid)), group.OKResponse,
                            needs=NEEDS)


@click.command("commit")
@options.document()
@click.option("--pretend", is_flag=True, help="Only say what would happen.")
@click.option("--wait", is_flag=True,
              help="Then wait until the group is Converged (exit 8 if it gets stuck: "
                   "Holding, CrashLooping, ProvisionFailing, Paused, Aborted).")
@click.option("--timeout", "wait_timeout", type=options.DURATION, default=None,
              metavar="DURATION", help="With --wait: give up after this long (exit 9).")
@options.interval
@confirm.options
@options.yaml_input
@click.pass_context
def commit(ctx: click.Context, file: str, pretend: bool, wait: bool,
           wait_timeout: float | None, interval: float, yes: bool, limit: int,
           as_yaml: bool) -> None:
    """Commit the group Spec in FILE ({ID, Properties}): the plugin makes it so."""
    spec = inputs.read_as(group.Spec, file, as_yaml=as_yaml, what="group Spec")
    if not pretend:
        changed = abs(confirm.allocation_size(spec.properties) - _declared_size(ctx, spec.id))
        confirm.check(changed, limit=limit, yes=yes, what=f"committing {spec.id}")
    answer = remote.target(ctx).call("Group.CommitGroup",
                                     group.CommitRequest(spec=spec, pretend=pretend),
                                     group.CommitResponse, needs=NEEDS)
    if pretend:
        render.line(f"Committing {spec.id} would involve: {answer.details}")
        return
    try:
        render.line(f"Committed {spec.id}: {answer.details}")
        if wait:
            _wait(ctx, spec.id, timeout=wait_timeout, interval=interval)
    except KeyboardInterrupt:
        # From here on the commit has landed, whenever Ctrl-C comes.
        raise errors.Interrupted(
            f"interrupted: the commit stands and {spec.id} goes on converging server-side "
            f"(follow it: infrakit group describe {spec.id} --watch)") from None


def _declared_size(ctx: click.Context, gid: str) -> int:
    """The size group ``gid`` is committed with now (0 when it is not)."""
    for spec in _specs(ctx):
        if spec.id == gid:
            return confirm.allocation_size(spec.properties)
    return 0


def _wait(ctx: click.Context, gid: str, *, timeout: float | None, interval: float) -> None:
    with progress.Progress(f"{gid}: members on the new config") as bar:
        def show(found: follow.Snapshot) -> None:
            bar.update(found.done, found.total, found.phase)
        done = follow.wait(lambda: follow.snapshot(gid, _description(ctx, gid)),
                           timeout=timeout, interval=interval, show=show)
    render.line(f"Converged {gid}: {done.done}/{render.plural(done.total, 'member')}")


def _description(ctx: click.Context, gid: str) -> group.Description:
    return remote.target(ctx).call("Group.DescribeGroup", group.IDRequest(id=group.ID(gid)),
                                   group.DescribeResponse, needs=NEEDS).description


def _descriptions(ctx: click.Context, gid: str | None) -> list[tuple[str, group.Description]]:
    """Group ``gid``, or every group the plugin manages, described."""
    gids = [gid] if gid is not None else [spec.id for spec in _specs(ctx)]
    return [(each, _description(ctx, each)) for each in gids]


@click.command("describe")
@click.argument("gid", metavar="[ID]", required=False)
@click.option("-w", "--watch", "watching", is_flag=True,
              help="Keep watching, redrawn (plain lines when not a terminal) on every change, "
                   "until Ctrl-C (exit 0).")
@options.interval
@click.option("--exit-status", is_flag=True,
              help="Exit 8 unless every group described is Converged.")
@options.quiet
@options.output()
@click.pass_context
def describe(ctx: click.Context, gid: str | None, watching: bool, interval: float,
             exit_status: bool, quiet: bool, output: str) -> None:
    """The live instances of group ID (of every group, without ID), then its status and the
    reasons for its recent actions (json/yaml: the whole Description, with Status)."""
    if watching:
        last = watch.run(lambda: _descriptions(ctx, gid), interval=interval)
        found = [(each.snapshot.gid, each.description) for each in last]
    else:
        found = _descriptions(ctx, gid)
        _print_descriptions(found, single=gid is not None, quiet=quiet, output=output)
    if exit_status:
        _check_converged(found)


def _print_descriptions(found: list[tuple[str, group.Description]], *, single: bool,
                        quiet: bool, output: str) -> None:
    if output != "table":
        if single:
            render.document(_document(found[0][1]), output)
        else:
            render.document([{"ID": each, **_document(description)}
                             for each, description in found], output)
        return
    for index, (each, description) in enumerate(found):
        if not single and not quiet:
            render.line(f"{chr(10) if index else ''}GROUP {each}")
        render.instances(description.instances, output=output, quiet=quiet)
        if not quiet:
            render.status(description.status)


def _document(description: group.Description) -> dict[str, object]:
    """The wire Description, with ISO 8601 times in its Status."""
    wire = description.to_wire()
    if "Status" in wire:
        wire["Status"] = times.iso_times(wire["Status"])
    return wire


def _check_converged(found: list[tuple[str, group.Description]]) -> None:
    seen = [follow.snapshot(gid, description) for gid, description in found]
    stuck = [each for each in seen if not each.converged]
    if stuck:
        raise errors.NotConverged("not converged: " + "; ".join(
            f"{each.gid} {each.phase or 'not converged'}"
            f"{f' - {each.reason}' if each.reason else ''}" for each in stuck))


def _specs(ctx: click.Context) -> list[group.Spec]:
    answer = remote.target(ctx).call("Group.InspectGroups", group.Empty(),
                                     group.InspectResponse, needs=NEEDS)
    return answer.groups or []


@click.command("inspect")
@click.argument("gid", metavar="ID")
@options.output(default="json", choices=("json", "yaml"))
@click.pass_context
def inspect(ctx: click.Context, gid: str, output: str) -> None:
    """The Spec group ID was committed with."""
    for spec in _specs(ctx):
        if spec.id == gid:
            render.document(spec.to_wire(), output)
            return
    raise errors.NotFoundError(f"Group '{gid}' is not being watched", group=gid)


@click.command("ls")
@options.quiet
@options.output()
@click.pass_context
def ls(ctx: click.Context, quiet: bool, output: str) -> None:
    """The groups the plugin manages (json/yaml: their Specs)."""
    specs = _specs(ctx)
    if output != "table":
        render.document([spec.to_wire() for spec in specs], output)
        return
    render.table(["ID"], [[spec.id] for spec in specs], widths=(), quiet=quiet)


@click.command("free")
@click.argument("gid", metavar="ID")
@click.pass_context
def free(ctx: click.Context, gid: str) -> None:
    """Stop managing group ID; its instances stay."""
    _call_id(ctx, "Group.FreeGroup", gid)
    render.line(f"Freed {gid}")


@click.command("destroy")
@click.argument("gid", metavar="ID")
@confirm.options
@click.pass_context
def destroy(ctx: click.Context, gid: str, yes: bool, limit: int) -> None:
    """Destroy every instance of group ID, then forget it."""
    members = len(_description(ctx, gid).instances)
    confirm.check(members, limit=limit, yes=yes, what=f"destroying {gid}")
    if progress.is_terminal() and members:
        _destroy_showing_progress(ctx, gid, members=members)
    else:
        _call_id(ctx, "Group.DestroyGroup", gid)
    render.line(f"Destroy {gid} initiated")


def _destroy_showing_progress(ctx: click.Context, gid: str, *, members: int) -> None:
    """DestroyGroup (one long call) in a thread, and the members gone so far meanwhile."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool, \
            progress.Progress(f"destroying {gid}") as bar:
        call = pool.submit(_call_id, ctx, "Group.DestroyGroup", gid)
        while not call.done():
            try:
                left = len(_description(ctx, gid).instances)
            except errors.InfrakitError:  # forgotten (done) or busy: the call tells
                left = 0
            bar.update(members - min(left, members), members)
            call.exception(timeout=0.5)
        call.result()
        bar.update(members, members)


def _control(verb: str, method: str, done: str, summary: str) -> click.Command:
    @click.command(verb, help=summary)
    @click.argument("gid", metavar="ID")
    @click.pass_context
    def control(ctx: click.Context, gid: str) -> None:
        _call_id(ctx, method, gid)
        render.line(f"{done} {gid}")
    return control


pause = _control("pause", "Group.Pause", "Paused",
                 "Pause the rolling update of group ID (nothing more is replaced).")
resume = _control("resume", "Group.Resume", "Resumed", "Resume the paused update of group ID.")
abort = _control("abort", "Group.Abort", "Aborted",
                 "Abort the update of group ID: keep the members as they are now.")


@click.command("size")
@click.argument("gid", metavar="ID")
@options.output()
@click.pass_context
def size(ctx: click.Context, gid: str, output: str) -> None:
    """The target size of group ID."""
    answer = remote.target(ctx).call("Group.Size", group.IDRequest(id=group.ID(gid)),
                                     group.SizeResponse, needs=NEEDS_1_1)
    if output != "table":
        render.document(answer.to_wire(), output)
    else:
        render.line(str(answer.size))


@click.command("set-size")
@click.argument("gid", metavar="ID")
@click.argument("new_size", metavar="N", type=click.IntRange(min=0))
@confirm.options
@click.pass_context
def set_size(ctx: click.Context, gid: str, new_size: int, yes: bool, limit: int) -> None:
    """Change the target size of group ID to N."""
    target = remote.target(ctx)
    if not yes:
        current = target.call("Group.Size", group.IDRequest(id=group.ID(gid)),
                              group.SizeResponse, needs=NEEDS_1_1).size
        confirm.check(abs(new_size - current), limit=limit, yes=yes,
                      what=f"setting the size of {gid} to {new_size}")
    target.call("Group.SetSize",
                            group.SetSizeRequest(id=group.ID(gid), size=new_size),
                            group.OKResponse, needs=NEEDS_1_1)
    render.line(f"Size of {gid} set to {new_size}")


@click.command("destroy-instances")
@click.argument("gid", metavar="ID")
@click.argument("instances", metavar="INSTANCE...", nargs=-1, required=True)
@click.pass_context
def destroy_instances(ctx: click.Context, gid: str, instances: tuple[str, ...]) -> None:
    """Destroy these members of group ID; the group does not replace them."""
    ids = [instance.ID(each) for each in instances]
    remote.target(ctx).call("Group.DestroyInstances",
                            group.DestroyInstancesRequest(id=group.ID(gid), instances=ids),
                            group.OKResponse, needs=NEEDS_1_1)
    render.line(f"Destroy {' '.join(instances)} of {gid} initiated")


VERBS = (commit, describe, inspect, ls, free, destroy, pause, resume, abort, size, set_size,
         destroy_instances)


command = named.plugin_group("group", summary="Access a group plugin.", verbs=VERBS,
                             default=DEFAULT_NAME, metavar="NAME")
