"""``infrakit instance --name P VERB`` and the Instance verbs of ``infrakit P VERB``.

The verbs find their plugin in the click context (:func:`remote.target`), so the named and
the dynamic forms share them.
"""

from __future__ import annotations

import click

from infrakit import errors
from infrakit.cli import confirm, inputs, named, options, progress, remote, render
from infrakit.spi import instance

NEEDS = (instance.INTERFACE,)


@click.command("validate")
@options.document()
@options.yaml_input
@click.pass_context
def validate(ctx: click.Context, file: str, as_yaml: bool) -> None:
    """Check instance Properties (FILE holds them); prints validate:ok."""
    plugin = remote.target(ctx)
    properties = inputs.read(file, as_yaml=as_yaml)
    plugin.call("Instance.Validate",
                instance.ValidateRequest(type=plugin.type_name, properties=properties),
                instance.OKResponse, needs=NEEDS)
    render.line("validate:ok")


@click.command("provision")
@options.document()
@options.yaml_input
@click.pass_context
def provision(ctx: click.Context, file: str, as_yaml: bool) -> None:
    """Provision one instance from the Spec in FILE ({Properties, Tags, Init, LogicalID,
    Attachments}); prints its ID."""
    plugin = remote.target(ctx)
    spec = inputs.read_as(instance.Spec, file, as_yaml=as_yaml, what="instance Spec")
    answer = plugin.call("Instance.Provision",
                         instance.ProvisionRequest(type=plugin.type_name, spec=spec),
                         instance.ProvisionResponse, needs=NEEDS)
    render.line(answer.id or "")


@click.command("destroy")
@click.argument("instance_ids", metavar="ID...", nargs=-1, required=True)
@confirm.options
@click.pass_context
def destroy(ctx: click.Context, instance_ids: tuple[str, ...], yes: bool, limit: int) -> None:
    """Destroy instance ID (and each further ID, in order; a progress bar for many)."""
    confirm.check(len(instance_ids), limit=limit, yes=yes,
                  what=f"destroying {len(instance_ids):,} instances")
    plugin = remote.target(ctx)
    with progress.Progress("destroying instances") as bar:
        for done, instance_id in enumerate(instance_ids):
            plugin.call("Instance.Destroy",
                        instance.DestroyRequest(type=plugin.type_name,
                                                instance=instance.ID(instance_id)),
                        instance.OKResponse, needs=NEEDS)
            render.line(f"destroyed {instance_id}")
            if len(instance_ids) > 1:
                bar.update(done + 1, len(instance_ids))


@click.command("describe")
@click.argument("instance_id", metavar="[ID]", required=False)
@options.tags("Only instances carrying this tag; all must match")
@click.option("-p", "--properties", is_flag=True, help="Also fetch each instance's properties.")
@options.quiet
@options.output()
@click.pass_context
def describe(ctx: click.Context, instance_id: str | None, tags: tuple[dict[str, str], ...],
             properties: bool, quiet: bool, output: str) -> None:
    """List the instances (only those carrying every --tags given), or only instance ID."""
    plugin = remote.target(ctx)
    answer = plugin.call(
        "Instance.DescribeInstances",
        instance.DescribeRequest(type=plugin.type_name, tags=options.merged(tags),
                                 properties=properties),
        instance.DescribeResponse, needs=NEEDS)
    found = answer.descriptions
    if instance_id is not None:
        found = [each for each in found if each.id == instance_id]
        if not found:
            where = f" with tags {render.tags(options.merged(tags))}" if tags else ""
            raise errors.NotFoundError(
                f"no instance {instance_id!r}{where} in plugin {plugin.name!r}",
                instance=instance_id)
        if output != "table":  # one instance: the object, not a list of one
            render.document(found[0].to_wire(), output)
            return
    render.instances(found, output=output, quiet=quiet, properties=properties)


VERBS = (validate, provision, destroy, describe)


command = named.plugin_group("instance", summary="Access an instance plugin.", verbs=VERBS)
