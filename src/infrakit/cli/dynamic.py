"""The original's dynamic form: ``infrakit <plugin-name> <verb> ...`` for every plugin found.

The root command only lists the sockets in the plugins dir (``infrakit --help`` makes no
calls). The plugin named on the command line is asked ``Handshake.Implements`` once, and
offers the verbs of the interfaces it serves, the same command objects as the named forms
(``infrakit instance --name P``…). A plugin serving several interfaces also gets one
sub-group per interface (``infrakit manager group describe ID``) for verbs they share.
"""

from __future__ import annotations

import click

from infrakit import errors
from infrakit.cli import flavor, group, instance, options, remote
from infrakit.rpc import address, discovery

VERBS: dict[str, tuple[click.Command, ...]] = {
    "Instance": instance.VERBS,
    "Flavor": flavor.VERBS,
    "Group": group.VERBS,
}
"""Interface name → its verbs, in the order that wins when two offer the same verb."""


def find(name: str, *, host: str | None = None) -> click.Command | None:
    """The command for plugin ``name`` (``NAME`` or ``NAME/TYPE``) if its socket exists;
    with ``host`` (``--host``), the plugin at that URL, asked when a verb runs."""
    if host or address.is_url(name):
        return PluginGroup(name, address.join(host, name) if host else name)
    try:
        path = discovery.find(name)
    except errors.InfrakitError:
        return None
    return PluginGroup(name, str(path))


class PluginGroup(click.Group):
    """``infrakit NAME VERB``: verbs from the interfaces the plugin implements."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name, help=f"The plugin at {path}: the verbs of the interfaces it "
                                    "implements.", short_help=f"The plugin at {path}.")
        self._target: remote.Target | None = None
        self._verbs: dict[str, click.Command] | None = None

    def target(self, ctx: click.Context) -> remote.Target:
        if self._target is None:
            settings = ctx.find_object(options.Settings) or options.Settings()
            self._target = remote.Target(self.name or "", timeout=settings.timeout,
                                         host=settings.host)
        return self._target

    def verbs(self, ctx: click.Context) -> dict[str, click.Command]:
        if self._verbs is None:
            offered: list[str] = []
            for api in self.target(ctx).implements():
                if api.name in VERBS and api.name not in offered:
                    offered.append(api.name)
            found: dict[str, click.Command] = {}
            for interface in sorted(offered, key=list(VERBS).index):
                for verb in VERBS[interface]:
                    found.setdefault(verb.name or "", verb)
            if len(offered) > 1:
                for interface in offered:
                    found.setdefault(interface.lower(), _interface_group(interface))
            self._verbs = found
        return self._verbs

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.verbs(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.verbs(ctx).get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        verb = args[0] if args else ""
        if not verb.startswith("-") and self.get_command(ctx, verb) is None:
            offered = ", ".join(self.list_commands(ctx)) or "none"
            apis = ", ".join(api.key() for api in self.target(ctx).implements()) or "nothing"
            raise errors.UsageError(
                f"plugin {self.name!r} has no verb {verb!r}; it offers: {offered} "
                f"(it implements {apis})")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> object:
        ctx.obj = self.target(ctx)
        return super().invoke(ctx)


def _interface_group(interface: str) -> click.Group:
    return click.Group(interface.lower(), commands=list(VERBS[interface]),
                       help=f"The {interface} verbs of this plugin.")
