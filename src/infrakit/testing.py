"""Fakes for plugin authors and our own tests: in-memory plugins and a clock you advance.

``FakeInstancePlugin`` and ``FakeFlavorPlugin`` implement the spi Protocols in memory,
count their calls and can be told to fail (``FakeGatekeeper`` is a flavor that can also
say "not now" and give a replacement order); ``FakeClock`` is monotonic time that moves
only when a test advances it, so loops with timeouts and polls run exactly and fast::

    clock = FakeClock()
    instances, flavors = FakeInstancePlugin(), FakeFlavorPlugin()
    ctl = controller.Controller(resolver({"instance-fake": instances}),
                                resolver({"flavor-fake": flavors}), clock=clock)
    await ctl.commit_group(spec, False)
    await clock.advance(10)

For tests with real processes and sockets: :func:`wait_until` polls a condition,
:func:`free_port` gives a loopback port nothing listens on, :func:`stop_processes` stops what
a test started.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

from infrakit import errors, processes
from infrakit.spi import flavor, instance

T = TypeVar("T")

_SETTLE_ROUNDS = 100
"""Event-loop turns given to woken tasks after each step of time (fakes answer at once)."""


class FakeClock:
    """Monotonic time that only ``advance`` moves; ``sleep`` resolves when it is reached."""

    def __init__(self, *, start: float = 0.0, epoch: float = 1_700_000_000.0) -> None:
        self._now = start
        self._epoch = epoch
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._epoch + self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones excluded)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def settle(self, rounds: int = _SETTLE_ROUNDS) -> None:
        """Let ready tasks run without moving time."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline, in order."""
        target = self._now + seconds
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self._now = max(self._now, deadline)
            future.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()

    async def advance_until(self, condition: Callable[[], bool], *, step: float = 1.0,
                            limit: float = 3600.0) -> float:
        """Advance by ``step`` until ``condition()`` holds; return the time it took.

        Raises ``TimeoutError`` when ``limit`` seconds pass first.
        """
        start = self._now
        await self.settle()
        while not condition():
            if self._now - start >= limit:
                raise TimeoutError(f"condition still false after {limit}s of fake time")
            await self.advance(step)
        return self._now - start


def resolver(plugins: Mapping[str, T]) -> Callable[[str], T]:
    """A plugin resolver over a dict: ``PluginNotFound`` for a name it does not hold."""

    def resolve(name: str) -> T:
        if name not in plugins:
            raise errors.PluginNotFound(f"no plugin named {name!r}", plugin=name)
        return plugins[name]

    return resolve


class FakeInstancePlugin:
    """An instance plugin in memory: IDs ``instance-000001``…, AND tag matching."""

    def __init__(self, *, clock: FakeClock | None = None, provision_delay: float = 0.0,
                 prefix: str = "instance-") -> None:
        self.clock = clock
        self.provision_delay = provision_delay
        self.prefix = prefix
        self.instances: dict[instance.ID, instance.Description] = {}
        """Live instances by ID."""
        self.specs: dict[instance.ID, instance.Spec] = {}
        """The spec each instance was provisioned with."""
        self.calls: Counter[str] = Counter()
        """How often each method was called."""
        self.history: list[tuple[str, instance.ID]] = []
        """``("provision" | "destroy", id)`` for every change, in order."""
        self.fail_provisions = 0
        """The next this many provisions fail; ``-1``: all of them until reset."""
        self.invalid: str | None = None
        """When set, ``validate`` raises ``InvalidError`` with this message."""
        self._ids = itertools.count(1)

    async def validate(self, properties: Any) -> None:
        self.calls["validate"] += 1
        if self.invalid is not None:
            raise errors.InvalidError(self.invalid)

    async def provision(self, spec: instance.Spec) -> instance.ID | None:
        self.calls["provision"] += 1
        if self.clock is not None and self.provision_delay:
            await self.clock.sleep(self.provision_delay)
        if self.fail_provisions:
            self.fail_provisions -= 1 if self.fail_provisions > 0 else 0
            raise errors.TemporaryError("fake provision failure")
        iid = self.add(tags=spec.tags, logical_id=spec.logical_id)
        self.specs[iid] = spec
        self.history.append(("provision", iid))
        return iid

    async def label(self, instance_id: instance.ID, labels: dict[str, str]) -> None:
        self.calls["label"] += 1
        found = self._get(instance_id)
        self.instances[instance_id] = found.model_copy(update={"tags": {**found.tags, **labels}})

    async def destroy(self, instance_id: instance.ID) -> None:
        self.calls["destroy"] += 1
        self._get(instance_id)
        del self.instances[instance_id]
        self.history.append(("destroy", instance_id))

    async def describe_instances(self, tags: dict[str, str],
                                 properties: bool = False) -> list[instance.Description]:
        self.calls["describe_instances"] += 1
        return self.matching(tags)

    def add(self, *, tags: Mapping[str, str], logical_id: str | None = None) -> instance.ID:
        """Put an instance in place directly (not counted as a provision)."""
        iid = instance.ID(f"{self.prefix}{next(self._ids):06d}")
        lid = instance.LogicalID(logical_id) if logical_id is not None else None
        self.instances[iid] = instance.Description(id=iid, logical_id=lid, tags=dict(tags))
        return iid

    def vanish(self, *instance_ids: instance.ID) -> None:
        """Instances die behind the controller's back."""
        for iid in instance_ids:
            self.instances.pop(iid, None)

    def matching(self, tags: Mapping[str, str]) -> list[instance.Description]:
        """The instances carrying every one of ``tags``, by ID."""
        return [d for iid, d in sorted(self.instances.items())
                if all(d.tags.get(k) == v for k, v in tags.items())]

    def _get(self, instance_id: instance.ID) -> instance.Description:
        if instance_id not in self.instances:
            raise errors.NotFoundError(f"no instance {instance_id!r}", instance=instance_id)
        return self.instances[instance_id]


class FakeFlavorPlugin:
    """A flavor in memory: vanilla-like Prepare, settable health, recorded drains."""

    def __init__(self, *, clock: FakeClock | None = None, drain_delay: float = 0.0,
                 default_health: flavor.Health = flavor.Health.HEALTHY) -> None:
        self.clock = clock
        self.drain_delay = drain_delay
        self.default_health = default_health
        """The verdict for instances not in ``health``."""
        self.health: dict[str, flavor.Health] = {}
        """Per-instance verdicts."""
        self.calls: Counter[str] = Counter()
        """How often each method was called."""
        self.prepared: list[tuple[instance.Spec, flavor.Index]] = []
        """Every Prepare's result and index, in order."""
        self.drained: list[instance.ID] = []
        """Every instance whose drain succeeded, in order."""
        self.draining = 0
        """Drains in progress now."""
        self.most_draining = 0
        """The most drains that were ever in progress at once."""
        self.fail_drains: set[str] | bool = False
        """``True``: every drain fails; a set: drains of these IDs fail."""
        self.invalid: str | None = None
        """When set, ``validate`` raises ``InvalidError`` with this message."""

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        self.calls["validate"] += 1
        if self.invalid is not None:
            raise errors.InvalidError(self.invalid)

    async def prepare(self, properties: Any, spec: instance.Spec,
                      allocation: flavor.AllocationMethod,
                      index: flavor.Index) -> instance.Spec:
        self.calls["prepare"] += 1
        props = properties if isinstance(properties, dict) else {}
        init = props.get("Init", [])
        lines = [init] if isinstance(init, str) else [str(line) for line in init]
        tags = {**spec.tags, **{str(k): str(v) for k, v in (props.get("Tags") or {}).items()}}
        prepared = spec.model_copy(update={"tags": tags, "init": "\n".join(lines)})
        self.prepared.append((prepared, index))
        return prepared

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        self.calls["healthy"] += 1
        return self.health.get(inst.id, self.default_health)

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        self.calls["drain"] += 1
        self.draining += 1
        self.most_draining = max(self.most_draining, self.draining)
        try:
            if self.clock is not None and self.drain_delay:
                await self.clock.sleep(self.drain_delay)
        finally:
            self.draining -= 1
        failing = self.fail_drains
        if failing is True or (isinstance(failing, set) and inst.id in failing):
            raise errors.TemporaryError(f"fake drain failure of {inst.id}")
        self.drained.append(inst.id)


class FakeGatekeeper(FakeFlavorPlugin):
    """A :class:`FakeFlavorPlugin` that can also say "not now" and give a replacement order
    (the optional :class:`infrakit.spi.flavor.Gatekeeper` methods)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refuse: dict[str, str] = {}
        """Members that may not go now, with the reason given."""
        self.rule: Callable[[instance.Description, list[instance.Description]],
                            flavor.Removal] | None = None
        """When set, decides ``can_remove`` (instead of ``refuse``)."""
        self.replace_order: list[str] = []
        """What ``order`` answers (only the IDs among the members it is given)."""
        self.fail: Exception | None = None
        """When set, ``can_remove`` and ``order`` raise it."""
        self.hang = False
        """When true, ``can_remove`` and ``order`` never answer."""
        self.asked: list[tuple[str, list[str]]] = []
        """Every ``can_remove``: the member asked about and the members given, in order."""

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        self.calls["can_remove"] += 1
        self.asked.append((inst.id, [m.id for m in members]))
        await self._misbehave()
        if self.rule is not None:
            return self.rule(inst, members)
        reason = self.refuse.get(inst.id)
        return flavor.Removal(allowed=reason is None, reason=reason or "")

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        self.calls["order"] += 1
        await self._misbehave()
        present = {m.id for m in members}
        return [instance.ID(iid) for iid in self.replace_order if iid in present]

    async def _misbehave(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail


def stop_processes(started: Iterable[subprocess.Popen[Any]], *,
                   timeout: float = 10.0) -> None:
    """Stop processes a test or benchmark started (:func:`infrakit.processes.stop_popens`):
    TERM every one still running, then wait for each; KILL what is left after ``timeout``."""
    processes.stop_popens(started, timeout=timeout)


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds (``True``) or ``timeout`` seconds pass
    (``False``): for tests that wait on real processes, files or sockets."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for(check: Callable[[], T | None], *, what: str, timeout: float = 60.0,
             pause: float = 0.05) -> T:
    """Call ``check`` every ``pause`` seconds until it returns something other than ``None``
    or ``False`` (an :class:`errors.InfrakitError`, a plugin not answering yet, counts as not
    yet) and return that; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except errors.InfrakitError:
            found = None
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(pause)


def free_port() -> int:
    """A loopback TCP port nothing listens on now (bound, then released): a closed port for a
    probe to fail on, or one a test's server may take."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port



def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nothing listens on now (a port released and handed
    out twice is skipped)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports

REQUIRE_ENGINES = "INFRAKIT_REQUIRE_ENGINES"
"""Set (by ``make test``) when every engine the tests need must be there."""


def missing_engine(reason: str) -> NoReturn:
    """A test's engine (dockerd, libvirtd, QEMU …) is missing: skip it for a developer's run,
    but fail it where :data:`REQUIRE_ENGINES` is set, so that a run meant to prove the
    feature never passes by skipping it."""
    import pytest  # only tests call this; the library does not depend on pytest

    if os.environ.get(REQUIRE_ENGINES):
        pytest.fail(f"{reason} ({REQUIRE_ENGINES} is set: the engine must be there)")
    pytest.skip(reason)
