"""``infrakit flavor --name P VERB`` and the Flavor verbs of ``infrakit P VERB``.

Inputs, as in the original CLI: ``validate FILE`` and ``healthy FILE`` read the flavor's
Properties from FILE. ``prepare`` takes either one document::

    {"Properties": <flavor properties>,
     "Spec": {"Properties": ..., "Tags": {...}, "Init": "...", "LogicalID": null},
     "Allocation": {"Size": 3},                 # optional
     "Index": {"Group": "workers", "Sequence": 0}}   # optional

or the original's two files, ``prepare PROPERTIES_FILE SPEC_FILE``. ``--size`` and
``--logical-ids`` give the Allocation on the command line.
"""

from __future__ import annotations

from typing import Any

import click

from infrakit import errors
from infrakit.cli import inputs, named, options, remote, render
from infrakit.spi import flavor, instance

NEEDS = (flavor.INTERFACE,)


def _allocation(function: Any) -> Any:
    function = click.option("--size", type=click.IntRange(min=0), default=None,
                            help="Allocation: the group's size (cattle).")(function)
    return click.option("--logical-ids", default=None, metavar="ID,ID...",
                        help="Allocation: the group's logical IDs (pets).")(function)


def _allocation_from(size: int | None, logical_ids: str | None) -> flavor.AllocationMethod | None:
    if size is None and logical_ids is None:
        return None
    ids = [instance.LogicalID(each) for each in (logical_ids or "").split(",") if each]
    return flavor.AllocationMethod(size=size or 0, logical_ids=ids or None)


@click.command("validate")
@options.document()
@_allocation
@options.yaml_input
@click.pass_context
def validate(ctx: click.Context, file: str, size: int | None, logical_ids: str | None,
             as_yaml: bool) -> None:
    """Check the flavor Properties in FILE; prints validate:ok."""
    plugin = remote.target(ctx)
    properties = inputs.read(file, as_yaml=as_yaml)
    allocation = _allocation_from(size, logical_ids) or flavor.AllocationMethod()
    plugin.call("Flavor.Validate",
                flavor.ValidateRequest(type=plugin.type_name, properties=properties,
                                       allocation=allocation),
                instance.OKResponse, needs=NEEDS)
    render.line("validate:ok")


@click.command("prepare")
@options.document()
@click.argument("spec_file", metavar="[SPEC_FILE]", required=False)
@_allocation
@options.yaml_input
@options.output(default="json", choices=("json", "yaml"))
@click.pass_context
def prepare(ctx: click.Context, file: str, spec_file: str | None, size: int | None,
            logical_ids: str | None, as_yaml: bool, output: str) -> None:
    """Prepare an instance Spec with the flavor; prints the Spec to provision.

    FILE holds {Properties, Spec, Allocation, Index}, or, with SPEC_FILE, only the flavor's
    Properties (SPEC_FILE then holds the instance Spec).
    """
    plugin = remote.target(ctx)
    if spec_file is None:
        document = inputs.read(file, as_yaml=as_yaml)
        if not isinstance(document, dict):
            raise errors.InvalidError(
                f"{file}: expected an object {{Properties, Spec, Allocation, Index}}")
        request = inputs.as_model(flavor.PrepareRequest, {**document, "Type": plugin.type_name},
                                  where=f"{file}: not a valid prepare input")
    else:
        spec = inputs.read_as(instance.Spec, spec_file, as_yaml=as_yaml, what="instance Spec")
        request = flavor.PrepareRequest(type=plugin.type_name, spec=spec,
                                        properties=inputs.read(file, as_yaml=as_yaml))
    allocation = _allocation_from(size, logical_ids)
    if allocation is not None:
        request = request.model_copy(update={"allocation": allocation})
    answer = plugin.call("Flavor.Prepare", request, flavor.PrepareResponse, needs=NEEDS)
    render.document(answer.spec.to_wire(), output)


@click.command("healthy")
@options.document()
@click.option("--id", "instance_id", default="", help="The instance's ID.")
@click.option("--logical-id", default=None, help="The instance's logical ID.")
@options.tags("The instance's tags")
@options.yaml_input
@options.output()
@click.pass_context
def healthy(ctx: click.Context, file: str, instance_id: str, logical_id: str | None,
            tags: tuple[dict[str, str], ...], as_yaml: bool, output: str) -> None:
    """Ask the flavor (Properties in FILE) about one instance; prints 0 unknown, 1 healthy,
    2 unhealthy."""
    plugin = remote.target(ctx)
    described = instance.Description(
        id=instance.ID(instance_id),
        logical_id=instance.LogicalID(logical_id) if logical_id else None,
        tags=options.merged(tags))
    answer = plugin.call("Flavor.Healthy",
                         flavor.InstanceRequest(type=plugin.type_name,
                                                properties=inputs.read(file, as_yaml=as_yaml),
                                                instance=described),
                         flavor.HealthyResponse, needs=NEEDS)
    if output != "table":
        render.document(answer.to_wire(), output)
    else:
        render.line(str(int(answer.health)))


VERBS = (validate, prepare, healthy)


command = named.plugin_group("flavor", summary="Access a flavor plugin.", verbs=VERBS)
