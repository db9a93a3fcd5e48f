"""``infrakit-flavor-etcd [--name flavor-etcd] [--log 0-5]``: serve the etcd flavor."""

from __future__ import annotations

from infrakit.plugins import launch


def run(argv: list[str] | None = None) -> None:
    """Parse the flags and serve :class:`~.plugin.Plugin` until SIGTERM or SIGINT."""
    args = launch.parse(argv, prog="infrakit-flavor-etcd",
                        description="etcd flavor plugin: group members that form one etcd "
                                    "cluster", default_name="flavor-etcd")

    # Imported here: the flags answer (--help) without loading the server and aiohttp.
    from infrakit.plugins.flavor.etcd import plugin
    from infrakit.rpc import server

    server.run(args.name, flavor=plugin.Plugin())
