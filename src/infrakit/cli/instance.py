"""``infrakit instance --name P VERB`` and the Instance verbs of ``infrakit P VERB``.

The verbs find their plugin in the click context (:func:`remote.target`), so the named and
the dynamic forms share them.
"""

from __future__ import annotations

import click

from infrakit.cli import inputs, options, remote, render
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
@click.argument("instance_id", metavar="ID")
@click.pass_context
def destroy(ctx: click.Context, instance_id: str) -> None:
    """Destroy instance ID."""
    plugin = remote.target(ctx)
    plugin.call("Instance.Destroy",
                instance.DestroyRequest(type=plugin.type_name, instance=instance.ID(instance_id)),
                instance.OKResponse, needs=NEEDS)
    render.line(f"destroyed {instance_id}")


@click.command("describe")
@options.tags("Only instances carrying this tag; all must match")
@click.option("-p", "--properties", is_flag=True, help="Also fetch each instance's properties.")
@options.quiet
@options.output()
@click.pass_context
def describe(ctx: click.Context, tags: tuple[dict[str, str], ...], properties: bool,
             quiet: bool, output: str) -> None:
    """List the instances (only those carrying every --tags given)."""
    plugin = remote.target(ctx)
    answer = plugin.call(
        "Instance.DescribeInstances",
        instance.DescribeRequest(type=plugin.type_name, tags=options.merged(tags),
                                 properties=properties),
        instance.DescribeResponse, needs=NEEDS)
    render.instances(answer.descriptions, output=output, quiet=quiet, properties=properties)


VERBS = (validate, provision, destroy, describe)


@click.group("instance")
@click.option("--name", required=True, metavar="NAME[/TYPE]", help="The instance plugin.")
@click.pass_context
def command(ctx: click.Context, name: str) -> None:
    """Access an instance plugin."""
    remote.bind(ctx, name)


for _verb in VERBS:
    command.add_command(_verb)
