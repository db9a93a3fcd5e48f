"""``infrakit-flavor-mariadb``: serve :class:`plugin.Plugin` on a socket in the plugins dir."""

from __future__ import annotations

from infrakit.plugins import launch
from infrakit.plugins.flavor.mariadb import plugin


def run(argv: list[str] | None = None) -> None:
    """``infrakit-flavor-mariadb [--name flavor-mariadb] [--log 0-5]``."""
    args = launch.parse(argv, prog="infrakit-flavor-mariadb",
                        description="MariaDB flavor plugin: a primary and its replicas",
                        default_name="flavor-mariadb")

    # Imported here: in-process users of the plugin do not need the server.
    from infrakit.rpc import server

    server.run(args.name, flavor=plugin.Plugin())
