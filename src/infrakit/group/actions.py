"""The controller's I/O on one member: list a group, create, probe, drain and destroy a
member.

Each function is one short conversation with the instance and flavor plugins, through
the spi Protocols only (RPC proxies in production, fakes in tests). The supervisor
decides; these carry out. Safety lives here too: only instances carrying the group's tag
are listed as members, and nothing else is ever destroyed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit.group import clock, config, tags
from infrakit.spi import flavor, group, instance


@dataclass(frozen=True, slots=True)
class Plugins:
    """How the controller reaches plugins by name (``instance-file/us-east``)."""

    instance: Callable[[str], instance.Plugin]
    flavor: Callable[[str], flavor.Plugin]


def memoized(plugins: Plugins) -> Plugins:
    """The same plugins, each name resolved once: one reconcile may create thousands of
    members, and resolving a name looks at the plugins dir each time."""
    instances: dict[str, instance.Plugin] = {}
    flavors: dict[str, flavor.Plugin] = {}

    def instance_plugin(name: str) -> instance.Plugin:
        found = instances.get(name)
        if found is None:
            found = instances[name] = plugins.instance(name)
        return found

    def flavor_plugin(name: str) -> flavor.Plugin:
        found = flavors.get(name)
        if found is None:
            found = flavors[name] = plugins.flavor(name)
        return found

    return Plugins(instance=instance_plugin, flavor=flavor_plugin)


async def list_members(plugins: Plugins, gid: group.ID,
                       props: config.Properties) -> list[instance.Description]:
    """The group's members: one DescribeInstances by the group tag (foreign ones dropped)."""
    found = await plugins.instance(props.instance.plugin).describe_instances(
        {tags.GROUP: gid}, False)
    key = tags.GROUP  # inlined tags.owned_by: this runs over every member at every poll
    return [m for m in found if m.tags.get(key) == gid]


async def create(plugins: Plugins, gid: group.ID, props: config.Properties, *, sha: str,
                 logical_id: instance.LogicalID | None, sequence: int) -> instance.ID | None:
    """Flavor.Prepare, then Instance.Provision; the group's tags survive the flavor."""
    ours = {tags.GROUP: gid, tags.CONFIG_SHA: sha}
    spec = instance.Spec(properties=props.instance.properties, tags=ours, logical_id=logical_id)
    prepared = await plugins.flavor(props.flavor.plugin).prepare(
        props.flavor.properties, spec, props.allocation,
        flavor.Index(group=gid, sequence=sequence))
    final = prepared.model_copy(update={"tags": {**prepared.tags, **ours},
                                        "logical_id": logical_id})
    return await plugins.instance(props.instance.plugin).provision(final)


async def judge(plugin: flavor.Plugin, properties: Any,
                member: instance.Description) -> flavor.Verdict:
    """Flavor.Healthy of one member, with what the probe said when the plugin can say it
    (its optional ``judge``: our RPC proxies, flavor-vanilla); a plain verdict otherwise."""
    judging = getattr(plugin, "judge", None)  # not isinstance: that is slow, per member
    if judging is not None:
        verdict: flavor.Verdict = await judging(properties, member)
        return verdict
    return flavor.Verdict(health=flavor.Health(await plugin.healthy(properties, member)))


async def drain(plugins: Plugins, gid: group.ID, props: config.Properties,
                member: instance.Description, *, source: clock.Clock) -> None:
    """Flavor.Drain within ``Health.DrainTimeout`` (``TimeoutError`` past it)."""
    _check_owned(member, gid)
    work = plugins.flavor(props.flavor.plugin).drain(props.flavor.properties, member)
    await clock.within(source, props.health.drain_timeout, work)


async def destroy(plugins: Plugins, gid: group.ID, props: config.Properties,
                  member: instance.Description) -> None:
    """Instance.Destroy; an instance already gone counts as destroyed."""
    _check_owned(member, gid)
    plugin = plugins.instance(props.instance.plugin)
    try:
        await plugin.destroy(member.id)
    except errors.PluginNotFound:
        raise
    except errors.NotFoundError:
        pass


def _check_owned(member: instance.Description, gid: group.ID) -> None:
    if not tags.owned_by(member, gid):
        raise errors.PermanentError(
            f"refusing to touch {member.id}: it does not carry {tags.GROUP}={gid}",
            instance=member.id)
