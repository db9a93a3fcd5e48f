"""Fixtures for the CLI tests: plugins served in-process on a background loop, and the CLI.

The CLI's sync client blocks the test thread, so the servers run on an asyncio loop in a
thread of their own; ``cli`` runs ``infrakit`` in-process with click's runner.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from infrakit import errors, testing
from infrakit.cli import main
from infrakit.rpc import server
from infrakit.spi import group, instance


class Loop:
    """Plugin servers running on an event loop in a background thread."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[server.Server] = []

    def serve(self, name: str, **objects: Any) -> server.Server:
        running = server.Server(name, plugins_dir=self.directory, **objects)
        asyncio.run_coroutine_threadsafe(running.start(), self.loop).result(10)
        self.servers.append(running)
        return running

    def close(self) -> None:
        for running in reversed(self.servers):
            asyncio.run_coroutine_threadsafe(running.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def serve(plugins_dir: pathlib.Path) -> Iterator[Callable[..., server.Server]]:
    """``serve(name, instance=obj, ...)``: serve objects on ``<plugins dir>/<name>``."""
    loop = Loop(plugins_dir)
    try:
        yield loop.serve
    finally:
        loop.close()


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli("group", "ls", input=None)``: run infrakit in-process; stdout and stderr apart."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main.cli, list(args), input=input, prog_name="infrakit")

    return run


class FakeGroup:
    """A group plugin in memory: commits answer with canned plan texts."""

    def __init__(self) -> None:
        self.specs: dict[str, group.Spec] = {}
        self.members: dict[str, list[instance.Description]] = {}
        self.sizes: dict[str, int] = {}
        self.calls: list[tuple[str, Any]] = []
        self.status: Any = None

    def commit_group(self, spec: group.Spec, pretend: bool) -> str:
        self.calls.append(("commit", pretend))
        if not spec.id:
            raise errors.InvalidError("Group ID must not be blank")
        size = (spec.properties or {}).get("Allocation", {}).get("Size", 0)
        if not pretend:
            self.specs[spec.id] = spec
            self.sizes[spec.id] = size
        return f"Managing {size} instances"

    def _known(self, gid: str) -> None:
        if gid not in self.specs:
            raise errors.NotFoundError(f"Group '{gid}' is not being watched", group=gid)

    def free_group(self, gid: group.ID) -> None:
        self._known(gid)
        del self.specs[gid]

    def destroy_group(self, gid: group.ID) -> None:
        self._known(gid)
        del self.specs[gid]

    def describe_group(self, gid: group.ID) -> group.Description:
        self._known(gid)
        return group.Description(instances=self.members.get(gid, []), converged=True,
                                 status=self.status)

    def inspect_groups(self) -> list[group.Spec]:
        return list(self.specs.values())

    def destroy_instances(self, gid: group.ID, instances: list[instance.ID]) -> None:
        self._known(gid)
        self.calls.append(("destroy_instances", list(instances)))

    def size(self, gid: group.ID) -> int:
        self._known(gid)
        return self.sizes[gid]

    def set_size(self, gid: group.ID, size: int) -> None:
        self._known(gid)
        self.sizes[gid] = size

    def pause(self, gid: group.ID) -> None:
        self._known(gid)
        self.calls.append(("pause", gid))

    def resume(self, gid: group.ID) -> None:
        self._known(gid)
        self.calls.append(("resume", gid))

    def abort(self, gid: group.ID) -> None:
        self._known(gid)
        self.calls.append(("abort", gid))


class OldGroup:
    """A Group/0.1.0 plugin: no DestroyInstances, Size or SetSize, no extensions."""

    def commit_group(self, spec: group.Spec, pretend: bool) -> str:
        return "Noop"

    def free_group(self, gid: group.ID) -> None: ...

    def destroy_group(self, gid: group.ID) -> None: ...

    def describe_group(self, gid: group.ID) -> group.Description:
        return group.Description()

    def inspect_groups(self) -> list[group.Spec]:
        return []


@pytest.fixture
def fake_group() -> FakeGroup:
    return FakeGroup()


@pytest.fixture
def fake_instance() -> testing.FakeInstancePlugin:
    return testing.FakeInstancePlugin()


@pytest.fixture
def fake_flavor() -> testing.FakeFlavorPlugin:
    return testing.FakeFlavorPlugin()
