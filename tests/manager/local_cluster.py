"""Three managers, each with its own fenced backend group plugin, sharing one plugins dir,
a journaling instance-file plugin and flavor-vanilla: the failover tests' setup.

Timings are short so that the tests stay fast: backends reconcile every 200 ms and fence
every 250 ms, managers save update states every 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from journal_plugin import Journal, argv

from infrakit import errors
from infrakit import testing_cluster as cluster
from infrakit.rpc import discovery
from infrakit.spi import group

GID = group.ID("workers")
FENCE = "250ms"
NAMES = ("mgr-1", "mgr-2", "mgr-3")


def spec(version: str, *, size: int, probe: str = "true") -> group.Spec:
    """The group: instance-file members; vanilla's health ``probe`` gates rolling updates."""
    return group.Spec.from_wire({"ID": GID, "Properties": {
        "Allocation": {"Size": size},
        "Instance": {"Plugin": "instance-file", "Properties": {"Version": version}},
        "Flavor": {"Plugin": "flavor-vanilla", "Properties": {
            "Init": [f"echo {version}"], "Health": {"Command": probe, "Timeout": "5s"}}},
        "Update": {"HealthTimeout": "60s"},
    }})


def backend_of(manager: str) -> str:
    return manager.replace("mgr", "group")


class Local:
    """The processes (by name) and the files a failover test looks at."""

    def __init__(self, root: pathlib.Path, plugins_dir: pathlib.Path) -> None:
        self.root = root
        self.files = root / "instances"
        self.journal_path = root / "journal.jsonl"
        self.processes = cluster.Cluster(plugins_dir, root / "logs")
        self.plugins = discovery.Plugins(plugins_dir, timeout=10.0)

    def start(self, election: Callable[[str], Sequence[str]]) -> None:
        """The plugins, then each backend and its manager (``election(name)``: the flags)."""
        procs = self.processes
        procs.start("instance-file", argv("instance-file", self.files, self.journal_path))
        procs.start("flavor-vanilla", cluster.entry_point("flavor-vanilla"))
        for name in NAMES:
            procs.backend(backend_of(name), manager=name, poll="200ms", fence=FENCE)
            procs.manager(name, backend=backend_of(name), fence=FENCE, state_poll="200ms",
                          election=election(name))

    async def close(self) -> None:
        await self.plugins.close()
        self.processes.stop_all()

    def journal(self) -> Journal:
        return Journal.read(self.journal_path)

    def instances(self) -> dict[str, dict[str, Any]]:
        """Instance files by ID (a deleted-while-read file is skipped)."""
        found = {}
        for path in self.files.glob("instance-*"):
            try:
                found[path.name] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return found

    def shas(self) -> list[str]:
        return [i["Tags"].get("infrakit.config_sha", "") for i in self.instances().values()]

    async def leader(self, *, among: Sequence[str] = NAMES) -> str:
        """The name of the manager that says it leads (waits for one)."""
        async def find() -> str | None:
            for name in among:
                try:
                    if await self.plugins.manager(name).is_leader():
                        return name
                except errors.InfrakitError:
                    continue
            return None
        return await until(find, timeout=15, what="a leader")

    async def supervising(self) -> list[str]:
        """The backends that supervise the group now."""
        found = []
        for name in NAMES:
            try:
                async with asyncio.timeout(1):
                    held = await self.plugins.group(backend_of(name)).inspect_groups()
            except TimeoutError:
                found.append(f"?{name}")
                continue
            except errors.InfrakitError:
                continue
            if any(s.id == GID for s in held):
                found.append(name)
        return found


PASSING = (errors.TemporaryError, errors.NotLeaderError)
"""What a call may fail with while leadership moves."""


async def until(probe: Callable[[], Any], *, timeout: float, what: str,
                step: float = 0.05) -> Any:
    """Call ``probe`` (sync or async) until it returns something truthy; return that.
    Errors of a moving leadership (:data:`PASSING`) count as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if asyncio.iscoroutine(last):
                last = await last
        except PASSING as e:
            last = e
        else:
            if last:
                return last
        await asyncio.sleep(step)
    raise AssertionError(f"no {what} within {timeout}s (last: {last!r})")


class Sampler:
    """Which backends supervise the group, every 50 ms: overlaps and gaps of a handover."""

    def __init__(self, local: Local) -> None:
        self.local = local
        self.samples: list[tuple[float, list[str]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # the sampler failed: say why
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), await self.local.supervising()))
            await asyncio.sleep(0.05)

    def transitions(self) -> list[tuple[str, list[str]]]:
        """Each change of who supervises, with the time since the first sample."""
        found: list[tuple[str, list[str]]] = []
        for t, names in self.samples:
            if not found or found[-1][1] != names:
                found.append((f"{t - self.samples[0][0]:.2f}s", names))
        return found

    def overlaps(self) -> list[tuple[float, list[str]]]:
        return [(t, names) for t, names in self.samples if len(names) > 1]

    def longest_gap(self) -> float:
        """The longest stretch of samples in which no backend supervised the group."""
        longest, began = 0.0, None
        for t, names in self.samples:
            if names:
                if began is not None:
                    longest = max(longest, t - began)
                began = None
            elif began is None:
                began = t
        return longest
