"""Two managers on the file backend (InfraKit's leader file) with their fenced backends, an
instance plugin and flavor-vanilla, as local processes: the setup of the tests that follow
a group's reasons and crash-loop state through a manager and across a failover.

Timings are short so that the tests stay fast: backends reconcile every 100 ms and fence
every 250 ms, managers save update states every 100 ms.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

from infrakit import testing_cluster as cluster
from infrakit.rpc import discovery
from infrakit.spi import group

FENCE = "250ms"
POLL = "100ms"


def backend_of(manager: str) -> str:
    return manager.replace("mgr", "group")


class Pair:
    """The processes (by name), the leader file and the store of one test."""

    def __init__(self, root: pathlib.Path, plugins_dir: pathlib.Path) -> None:
        self.root = root
        self.leader_file = root / "leader"
        self.store_dir = root / "store"
        self.processes = cluster.Cluster(plugins_dir, root / "logs")
        self.plugins = discovery.Plugins(plugins_dir, timeout=10.0)

    def start(self, instance_plugin: str, *,
              managers: Sequence[str] = ("mgr-1", "mgr-2")) -> None:
        """The instance plugin (``instance-file`` or ``instance-process``, keeping its
        state in ``<root>/instances``), flavor-vanilla, then each manager's backend and the
        manager; the first manager leads."""
        self.leader_file.write_text(f"{managers[0]}\n")
        procs = self.processes
        procs.start(instance_plugin, cluster.entry_point(
            instance_plugin, "--dir", str(self.root / "instances")))
        procs.start("flavor-vanilla", cluster.entry_point("flavor-vanilla"))
        for name in managers:
            procs.backend(backend_of(name), manager=name, poll=POLL, fence=FENCE)
            procs.manager(name, backend=backend_of(name), fence=FENCE, state_poll=POLL,
                          election=["os", "--leader-file", str(self.leader_file),
                                    "--poll", POLL, "--store-dir", str(self.store_dir)])

    def lead(self, name: str) -> None:
        """Make ``name`` the leader (the leader file names it)."""
        self.leader_file.write_text(f"{name}\n")

    async def describe(self, manager: str, gid: group.ID) -> dict[str, Any]:
        """The group's status (ext) as ``manager`` answers DescribeGroup."""
        found = await self.plugins.group(manager).describe_group(gid)
        assert isinstance(found.status, dict)
        return found.status

    def saved_state(self, gid: group.ID) -> dict[str, Any] | None:
        """The update state the store holds for the group (``None`` when none, or while
        it is being replaced)."""
        try:
            states = json.loads((self.store_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        found = states.get(gid)
        return found if isinstance(found, dict) else None

    async def close(self) -> None:
        await self.plugins.close()
        self.processes.stop_all()
