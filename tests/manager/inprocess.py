"""Managers in-process for the proxy tests: leadership granted by hand, a real group
controller over in-memory plugins as the backend, the file store in a temp dir."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Callable
from typing import Any

from infrakit.group import controller, rolling
from infrakit.group import serve as group_serve
from infrakit.manager import leader, proxy, store_file
from infrakit.spi import flavor, group
from infrakit.testing import FakeFlavorPlugin, FakeInstancePlugin, resolver

GID = group.ID("web")


class Board:
    """Who leads, as the :class:`Manual` leaderships of a test see it."""

    def __init__(self) -> None:
        self.leader = ""
        self.views: dict[str, str] = {}
        """A manager whose view lags: its name → whom it believes leads."""


class Manual(leader.Base):
    """Leadership a test grants and revokes by hand."""

    def __init__(self, name: str, board: Board) -> None:
        super().__init__(name)
        self.board = board

    async def _run(self) -> None:
        await asyncio.Event().wait()

    def grant(self) -> None:
        self.board.leader = self.name
        self._gain(leader.Token(generation=time.time_ns()), "granted by the test")

    def revoke(self) -> None:
        if self.board.leader == self.name:
            self.board.leader = ""
        self._lose("revoked by the test")

    async def leader_info(self) -> leader.Info:
        return leader.Info(name=self.board.views.get(self.name, self.board.leader),
                           backend="manual")


def spec(*, size: int = 2, note: str = "v1", **extra: Any) -> group.Spec:
    return group.Spec.from_wire({"ID": GID, "Properties": {
        "Allocation": {"Size": size},
        "Instance": {"Plugin": "instance-fake", "Properties": {"Note": note}},
        "Flavor": {"Plugin": "flavor-fake", "Properties": {}}, **extra}})


class Recording(group_serve.Served):
    """The backend, noting each real commit and what the store held at that moment."""

    def __init__(self, inner: controller.Controller, store_dir: pathlib.Path) -> None:
        super().__init__(inner)
        self.store_dir = store_dir
        self.commits: list[tuple[group.Spec, Any, str]] = []

    async def commit_group(self, spec: group.Spec, pretend: bool, *,
                           resume: Any = None, version: str | None = None) -> str:
        if not pretend:
            path = self.store_dir / store_file.CONFIG
            self.commits.append((spec, resume, path.read_text() if path.exists() else ""))
        return await super().commit_group(spec, pretend, resume=resume, version=version)


class Node:
    """One manager with its backend, plugins and leadership."""

    def __init__(self, name: str, board: Board, store_dir: pathlib.Path, *,
                 instances: FakeInstancePlugin, flavors: FakeFlavorPlugin,
                 state_poll: float = 0.05) -> None:
        self.leadership = Manual(name, board)
        self.controller = controller.Controller(
            resolver({"instance-fake": instances}), resolver({"flavor-fake": flavors}),
            poll_interval=0.05)
        self.backend = Recording(self.controller, store_dir)
        self.store = store_file.FileStore(store_dir, history_limit=3,
                                          token=self.leadership.token)
        self.manager = proxy.Manager(name, leadership=self.leadership, store=self.store,
                                     backend=self.backend, backend_name="group-stateless",
                                     state_poll=state_poll, ready_timeout=2.0)

    async def lead(self) -> None:
        self.leadership.grant()
        await self.manager.wait_ready(5)

    async def close(self) -> None:
        await self.manager.stop()
        await self.controller.close()


async def eventually(condition: Callable[[], Any], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def update_of(state: Any) -> rolling.UpdateState | None:
    return rolling.UpdateState.from_wire(state) if state else None


UNKNOWN = flavor.Health.UNKNOWN
