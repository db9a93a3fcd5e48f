"""``infrakit up CONFIG``: the whole of InfraKit on one host, in one supervised process tree.

One process runs the manager and the default group controller (in-process: when this
process dies its controller dies with it, so no fencing is needed), with the file store in
``$INFRAKIT_HOME/configs`` and ``flock`` leadership on ``$INFRAKIT_HOME/leader.lock``; the
plugins the config names run as its children (:mod:`.children`), restarted when they die.
Once the manager leads it has taken over the store's groups (each with its rolling update);
then, for each group of the config, it commits the file's spec or keeps the store's, and
says which and why, one line per group (:mod:`.applied`: the store wins when it changed
since the file was last applied; ``apply_file`` commits the file regardless). SIGINT or
SIGTERM stops everything cleanly: groups are freed (their instances stay), then the children
are stopped by pid. The config is described in :mod:`.config`; ``examples/up.yml`` is one.
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
from datetime import UTC, datetime

from infrakit import errors
from infrakit.group import controller, rolling
from infrakit.group import serve as group_serve
from infrakit.manager import applied, children, config, leader_file, proxy, serve, store, store_file
from infrakit.rpc import discovery
from infrakit.spi import group

log = logging.getLogger(__name__)

BACKEND = "group-embedded"
"""The Plugin recorded for each group in the store: the in-process controller."""
TAKE_OVER_TIMEOUT = 30.0


async def up(settings: config.Up, *, report: Callable[[str], None],
             stopping: asyncio.Event | None = None, apply_file: bool = False) -> None:
    """Run until ``stopping`` is set (by default: until SIGINT or SIGTERM); ``apply_file``
    commits every group of the file even where the store changed since (``up --apply``)."""
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
            await _apply(manager, settings, force=apply_file, report=report)
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
    documents = store_file.FileStore(_store_dir(), token=lead.token)
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


async def _apply(manager: proxy.Manager, settings: config.Up, *, force: bool,
                 report: Callable[[str], None]) -> None:
    """Commit the file's groups, or keep the store's, as :func:`.applied.decide` says; then
    record what the store now holds of the file."""
    directory = _store_dir()
    marks = await _marks(directory, report=report)
    doc = await _document(manager)
    learned = dict(marks)
    for spec in settings.groups:
        version = await _apply_group(manager, spec, doc=doc, recorded=marks.get(spec.id),
                                     force=force, report=report)
        if version is not None:
            learned[spec.id] = applied.Mark(version=version, hash=applied.spec_hash(spec),
                                            source=settings.source, time=datetime.now(UTC))
    named = {spec.id for spec in settings.groups}
    for gid in doc.groups:
        if gid not in named:
            report(f"{gid}: in the store, not in the file; kept as stored")
    if _changed(marks, learned):
        await asyncio.to_thread(applied.save, directory, learned,
                                token=manager.leadership.token)


async def _apply_group(manager: proxy.Manager, spec: group.Spec, *, doc: store.Document,
                       recorded: applied.Mark | None, force: bool,
                       report: Callable[[str], None]) -> int | None:
    """Decide, say why, commit if so; the store version that now holds the file's spec."""
    history = await _history(manager, spec.id, report=report)
    stored = doc.group_spec(spec.id) if spec.id in doc.groups else None
    decision = applied.decide(spec, stored=stored, history=history, recorded=recorded,
                              force=force)
    line = decision.explain()
    if line is not None:
        report(line)
    if not decision.commits:
        return decision.applied
    details = await manager.commit_group(spec, False)
    report(f"Committed {spec.id}: {details}")
    history = await _history(manager, spec.id, report=report)
    return history[-1].version if history else None


def _store_dir() -> pathlib.Path:
    return serve.home() / "configs"


async def _marks(directory: pathlib.Path, *,
                 report: Callable[[str], None]) -> dict[group.ID, applied.Mark]:
    try:
        return await asyncio.to_thread(applied.load, directory)
    except errors.InvalidError as e:
        # Without marks nothing is applied over a store that differs from the file.
        report(f"{e.message}; taking it as empty (it is kept aside when rewritten)")
        return {}


async def _document(manager: proxy.Manager) -> store.Document:
    try:
        return await manager.store.load()
    except errors.InvalidError:
        # The take-over went on with the last good document; so do we.
        return manager.store.last_good or store.Document()


async def _history(manager: proxy.Manager, gid: group.ID, *,
                   report: Callable[[str], None]) -> list[store.HistoryEntry]:
    try:
        return await manager.store.history(gid)
    except errors.InvalidError as e:
        # Without a history the store counts as changed: it is kept, never overwritten.
        report(f"{gid}: {e.message}")
        return []


def _changed(before: dict[group.ID, applied.Mark], after: dict[group.ID, applied.Mark]) -> bool:
    """Whether a mark's version or hash changed (a new time alone is not worth a write)."""
    def key(marks: dict[group.ID, applied.Mark]) -> dict[group.ID, tuple[int, str]]:
        return {gid: (m.version, m.hash) for gid, m in marks.items()}
    return key(before) != key(after)


def _on_signals() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


def run(url: str, *, report: Callable[[str], None], apply_file: bool = False) -> None:
    """Load the config at ``url`` and run it until SIGINT or SIGTERM (``apply_file``: see
    :func:`up`)."""
    settings = config.load(url)
    # Children find the console scripts installed beside this Python (a virtualenv's bin).
    scripts = str(pathlib.Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join(p for p in (scripts, path) if p)
    asyncio.run(up(settings, report=report, apply_file=apply_file))
