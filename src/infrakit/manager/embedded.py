"""``infrakit up CONFIG``: the whole of InfraKit on one host, in one supervised process tree.

One process runs the manager and the default group controller (in-process: when this
process dies its controller dies with it, so no fencing is needed), with the file store in
``$INFRAKIT_HOME/configs`` and ``flock`` leadership on ``$INFRAKIT_HOME/leader.lock``; the
plugins the config names run as its children (:mod:`.children`), restarted when they die.
Once the manager leads it commits the config's groups (a group already in the store from an
earlier run is taken over first, with its rolling update). SIGINT or SIGTERM stops
everything cleanly: groups are freed (their instances stay), then the children are stopped
by pid. The config is described in :mod:`.config`; ``examples/up.yml`` is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import signal
import sys
from collections.abc import Callable

from infrakit import errors
from infrakit.group import controller, rolling
from infrakit.group import serve as group_serve
from infrakit.manager import children, config, leader_file, proxy, serve, store_file
from infrakit.rpc import discovery
from infrakit.spi import group

log = logging.getLogger(__name__)

BACKEND = "group-embedded"
"""The Plugin recorded for each group in the store: the in-process controller."""
TAKE_OVER_TIMEOUT = 30.0


async def up(settings: config.Up, *, report: Callable[[str], None],
             stopping: asyncio.Event | None = None) -> None:
    """Run until ``stopping`` is set (by default: until SIGINT or SIGTERM)."""
    stopping = stopping or _on_signals()
    plugins_dir = discovery.plugins_dir()
    kids = children.Children(settings.names, settings.rules, plugins_dir=plugins_dir,
                             source=settings.source, report=report)
    await kids.start()
    plugins = discovery.Plugins(plugins_dir)
    try:
        manager = _manager(settings, plugins)
        lock = serve.home() / "leader.lock"
        async with serve.served(manager, where=f"lock file {lock}", plugins_dir=plugins_dir):
            await _take_over(manager, lock)
            for spec in settings.groups:
                details = await manager.commit_group(spec, False)
                report(f"Committed {spec.id}: {details}")
            report(f"Up: manager {manager.name!r} leads; Ctrl-C stops everything "
                   "(instances stay)")
            watching = asyncio.create_task(kids.supervise(), name="children")
            try:
                await stopping.wait()
            finally:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
            report("Stopping: freeing the groups, then the plugins")
    finally:
        await plugins.close()
        await kids.stop()
    report("Stopped")


def _manager(settings: config.Up, plugins: discovery.Plugins) -> proxy.Manager:
    home = serve.home()
    home.mkdir(parents=True, exist_ok=True)
    name = settings.manager.name
    lead = leader_file.FlockLeadership(home / "leader.lock", name)
    documents = store_file.FileStore(home / "configs", token=lead.token)
    holder: list[proxy.Manager] = []

    async def on_state(gid: group.ID, state: rolling.UpdateState | None) -> None:
        if holder:
            await holder[0].record_state(gid, state)

    groups = controller.Controller(plugins.instance, plugins.flavor,
                                   poll_interval=settings.manager.poll_interval,
                                   max_parallel=settings.manager.max_parallel,
                                   on_state=on_state)
    manager = proxy.Manager(name, leadership=lead, store=documents,
                            backend=group_serve.Served(groups), backend_name=BACKEND,
                            state_poll=settings.manager.state_poll)
    holder.append(manager)
    return manager


async def _take_over(manager: proxy.Manager, lock: object) -> None:
    try:
        await manager.wait_ready(TAKE_OVER_TIMEOUT)
    except TimeoutError:
        info = await manager.leader_info()
        who = f"{info.name!r} holds it" if info.name else "it is held"
        raise errors.ConflictError(
            f"manager {manager.name!r} could not lead within {TAKE_OVER_TIMEOUT:g}s: {who} "
            f"(lock file {lock}; is another `infrakit up` running on this INFRAKIT_HOME?)"
        ) from None


def _on_signals() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


def run(url: str, *, report: Callable[[str], None]) -> None:
    """Load the config at ``url`` and run it until SIGINT or SIGTERM."""
    settings = config.load(url)
    # Children find the console scripts installed beside this Python (a virtualenv's bin).
    scripts = str(pathlib.Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(p for p in (scripts, path) if p)
    asyncio.run(up(settings, report=report))
