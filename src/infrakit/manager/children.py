"""The plugin processes ``infrakit up`` runs: started, restarted when they die, stopped.

:mod:`.embedded` starts every plugin its config names with :func:`infrakit.rpc.starting.start`
(each in a session of its own, output to ``<plugins dir>/<name>.log``, ready once its socket
answers), watches them, and restarts one that exits, after 1 s, then 2 s, 4 s … at most
30 s while it keeps failing (a child that ran 30 s counts as healthy again). The previous
log is kept as ``<name>.log.1``. :meth:`Children.stop` stops them by the pid each wrote
beside its socket (SIGTERM, SIGKILL after a timeout). A plugin found already running is
used but neither supervised nor stopped: it is not ours.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from infrakit import errors
from infrakit.rpc import launch, starting

log = logging.getLogger(__name__)

FIRST_WAIT = 1.0
LONGEST_WAIT = 30.0
STABLE = 30.0
"""Seconds a child must run before its next death restarts it after FIRST_WAIT again."""
CHECK = 0.2
"""Seconds between looks at the children."""


@dataclass
class Child:
    """One plugin ``infrakit up`` runs."""

    name: str
    outcome: launch.Outcome
    started: float
    wait: float = FIRST_WAIT
    """The wait before the next restart."""
    due: float | None = None
    """When the pending restart is due (monotonic), or None while it runs."""
    restarts: int = 0

    @property
    def ours(self) -> bool:
        return self.outcome.ok and self.outcome.process is not None

    def exited(self) -> int | None:
        process = self.outcome.process
        return None if process is None else process.poll()


class Children:
    """``Children(names, rules, plugins_dir=..., source=...)``: one ``infrakit up``'s plugins."""

    def __init__(self, names: list[str], rules: dict[str, launch.Rule], *,
                 plugins_dir: pathlib.Path, source: str,
                 report: Callable[[str], None] = log.info,
                 ready_timeout: float = starting.READY_TIMEOUT) -> None:
        """``names``: the plugins to run; ``rules``: how to launch those that do not start
        from their ``infrakit.plugins`` entry point."""
        self.names = names
        self.rules = rules
        self.plugins_dir = plugins_dir
        self.source = source
        self.report = report
        self.ready_timeout = ready_timeout
        self.children: dict[str, Child] = {}

    async def start(self) -> None:
        """Start every plugin; if one fails, stop those started and raise its error."""
        outcomes = await asyncio.to_thread(
            starting.start, self.names, self.rules, plugins_dir=self.plugins_dir,
            timeout=self.ready_timeout, config_source=self.source)
        now = time.monotonic()
        for outcome in outcomes:
            self.children[outcome.name] = Child(outcome.name, outcome, started=now)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            await self.stop()
            first = failed[0].error
            assert first is not None
            raise first
        for outcome in outcomes:
            self.report(outcome.message)

    async def supervise(self) -> None:
        """Restart children that exit, until cancelled."""
        while True:
            await asyncio.sleep(CHECK)
            for child in list(self.children.values()):
                await self._look_after(child)

    async def _look_after(self, child: Child) -> None:
        if not child.ours:
            return
        now = time.monotonic()
        if child.due is None:
            status = child.exited()
            if status is None:
                return
            if now - child.started >= STABLE:
                child.wait = FIRST_WAIT
            child.due = now + child.wait
            self.report(f"{child.name} exited with status {status}; restarting in "
                        f"{child.wait:g}s")
            return
        if now >= child.due:
            await self._restart(child)

    async def _restart(self, child: Child) -> None:
        _keep_log(self.plugins_dir / f"{child.name}.log")
        [outcome] = await asyncio.to_thread(
            starting.start, [child.name], self.rules, plugins_dir=self.plugins_dir,
            timeout=self.ready_timeout, config_source=self.source)
        child.restarts += 1
        child.started = time.monotonic()
        if outcome.ok and outcome.process is not None:
            child.outcome, child.due = outcome, None
            child.wait = min(child.wait * 2, LONGEST_WAIT)
            self.report(f"restarted {outcome.message}")
            return
        child.wait = min(child.wait * 2, LONGEST_WAIT)
        child.due = time.monotonic() + child.wait
        self.report(f"{child.name} did not restart ({outcome.message}); next try in "
                    f"{child.wait:g}s")

    async def stop(self) -> list[launch.Outcome]:
        """Stop the children this started (by pid), the others are left alone."""
        ours = [child.outcome for child in self.children.values() if child.ours]
        stopped = await asyncio.to_thread(starting.release, ours, plugins_dir=self.plugins_dir)
        for outcome in stopped:
            if outcome.error is not None:
                log.warning("stopping %s: %s", outcome.name, outcome.error.message)
        return stopped


def _keep_log(path: pathlib.Path) -> None:
    try:
        os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise errors.PermanentError(f"cannot keep the log {path}: {e}") from e
