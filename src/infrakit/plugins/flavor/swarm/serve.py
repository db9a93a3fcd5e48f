"""``infrakit-flavor-swarm``: the plugin as its own process, with v0.5's typed objects
``flavor-swarm/manager`` and ``flavor-swarm/worker``.

    infrakit-flavor-swarm [--name flavor-swarm] [--log 0-5]
"""

from __future__ import annotations

from infrakit.plugins import launch
from infrakit.plugins.flavor.swarm import plugin
from infrakit.plugins.flavor.swarm import properties as swprops


def run(argv: list[str] | None = None) -> None:
    """Entry point: a start-up failure exits with one line."""
    from infrakit.rpc import server

    args = launch.parse(argv, prog="infrakit-flavor-swarm",
                        description="Docker swarm mode flavor plugin", default_name="flavor-swarm")
    flavors = {role: plugin.Plugin(role) for role in swprops.ROLES}
    server.main("infrakit-flavor-swarm", lambda: server.serve(args.name, flavor=flavors))
