"""The named command groups that talk to one plugin: ``infrakit group|instance|flavor|manager
[--name P] VERB``, all made by :func:`plugin_group`.

``--name`` is checked when a verb calls the plugin, not when the group parses its options,
so ``infrakit instance describe --help`` works without it (and without any plugin running).
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from infrakit.cli import remote


def plugin_group(name: str, *, summary: str, verbs: Iterable[click.Command],
                 default: str | None = None, metavar: str = "NAME[/TYPE]") -> click.Group:
    """``infrakit NAME [--name P] VERB``: the group binds plugin P as the verbs' target.

    ``default`` is the plugin used without ``--name``; with none, a verb run without
    ``--name`` is a usage error (exit 2).
    """
    def callback(plugin: str | None) -> None:
        remote.bind(click.get_current_context(), plugin or "")

    option = click.Option(["--name", "plugin"], default=default, show_default=default is not None,
                          metavar=metavar,
                          help=f"The {name} plugin" + ("." if default else " (required)."))
    return click.Group(name, commands=list(verbs), params=[option], callback=callback,
                       help=summary)
