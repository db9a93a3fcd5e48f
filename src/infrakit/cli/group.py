"""``infrakit group [--name group] VERB`` and the Group verbs of ``infrakit P VERB``.

The lines scripts compare are exactly the original's: ``Committed <id>: <details>``,
``Committing <id> would involve: <details>``, ``Freed <id>``, ``Destroy <id> initiated``.
``pause``, ``resume`` and ``abort`` call our Group extensions (rolling-update control).
"""

from __future__ import annotations

import click

from infrakit import errors
from infrakit.cli import inputs, options, remote, render
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
@options.yaml_input
@click.pass_context
def commit(ctx: click.Context, file: str, pretend: bool, as_yaml: bool) -> None:
    """Commit the group Spec in FILE ({ID, Properties}): the plugin makes it so."""
    spec = inputs.read_as(group.Spec, file, as_yaml=as_yaml, what="group Spec")
    answer = remote.target(ctx).call("Group.CommitGroup",
                                     group.CommitRequest(spec=spec, pretend=pretend),
                                     group.CommitResponse, needs=NEEDS)
    if pretend:
        render.line(f"Committing {spec.id} would involve: {answer.details}")
    else:
        render.line(f"Committed {spec.id}: {answer.details}")


@click.command("describe")
@click.argument("gid", metavar="ID")
@options.quiet
@options.output()
@click.pass_context
def describe(ctx: click.Context, gid: str, quiet: bool, output: str) -> None:
    """The live instances of group ID, then its status and the reasons for its recent
    actions (json/yaml: the whole Description, with Status)."""
    answer = remote.target(ctx).call("Group.DescribeGroup", group.IDRequest(id=group.ID(gid)),
                                     group.DescribeResponse, needs=NEEDS)
    if output != "table":
        render.document(answer.description.to_wire(), output)
        return
    render.instances(answer.description.instances, output=output, quiet=quiet)
    if not quiet:
        render.status(answer.description.status)


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
@click.pass_context
def destroy(ctx: click.Context, gid: str) -> None:
    """Destroy every instance of group ID, then forget it."""
    _call_id(ctx, "Group.DestroyGroup", gid)
    render.line(f"Destroy {gid} initiated")


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
@click.pass_context
def set_size(ctx: click.Context, gid: str, new_size: int) -> None:
    """Change the target size of group ID to N."""
    remote.target(ctx).call("Group.SetSize",
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


@click.group("group")
@click.option("--name", default=DEFAULT_NAME, show_default=True, metavar="NAME",
              help="The group plugin.")
@click.pass_context
def command(ctx: click.Context, name: str) -> None:
    """Access a group plugin."""
    remote.bind(ctx, name)


for _verb in VERBS:
    command.add_command(_verb)
