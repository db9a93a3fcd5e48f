"""Following a group from the CLI: what one DescribeGroup says, and waiting for Converged.

``group commit --wait`` calls :func:`wait`; ``group describe --watch`` (:mod:`.watch`) and
``--exit-status`` read :class:`Snapshot`. Both loops go through :class:`Poller`, which turns
the expected transients (the plugin restarting: connection refused, socket missing, no
answer in time) into one WARNING line on stderr and a retry, not a failure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from infrakit import errors
from infrakit.cli import render
from infrakit.spi import group

T = TypeVar("T")

CONVERGED = "Converged"
STUCK = frozenset({"Holding", "CrashLooping", "ProvisionFailing", "Paused", "Aborted"})
"""Phases a group does not leave without a person: ``commit --wait`` stops on them."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One group as one DescribeGroup described it."""

    gid: str
    converged: bool
    """Converged, by the (ext) Status phase when there is one, else DescribeGroup's flag."""
    phase: str = ""
    """The (ext) Status phase; ``""`` from a plugin without Status (v0.5)."""
    reason: str = ""
    done: int = 0
    """Members on the committed config."""
    total: int = 0
    """The declared size."""
    members: int = 0
    """Members there now."""
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The Status document as it came."""

    @property
    def stuck(self) -> bool:
        return self.phase in STUCK

    def summary(self) -> str:
        """``workers: 3/5 members on the new config (Converging: <reason>)``."""
        reason = f": {self.reason}" if self.reason else ""
        phase = f" ({self.phase}{reason})" if self.phase else ""
        return f"{self.gid}: {self.done}/{render.plural(self.total, 'member')} on the new " \
               f"config{phase}"


def snapshot(gid: str, description: group.Description) -> Snapshot:
    """What ``description`` (an answer to DescribeGroup ``gid``) says."""
    status: dict[str, Any] = description.status if isinstance(description.status, dict) else {}
    phase = str(status.get("Phase") or "")
    found = status.get("Counts")
    counts: dict[str, Any] = found if isinstance(found, dict) else {}
    members = len(description.instances)
    total = _int(counts.get("Expected"), _int(status.get("Size"), members))
    done = _int(counts.get("Current"), members if description.converged else 0)
    converged = description.converged and phase in ("", CONVERGED)
    return Snapshot(gid=gid, converged=converged, phase=phase,
                    reason=str(status.get("Reason") or ""), done=done, total=total,
                    members=_int(counts.get("Existing"), members), status=status)


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def warn(text: str) -> None:
    click.echo(f"infrakit: WARNING: {text}", err=True)


class Poller:
    """Calls that retry through a plugin restart: one WARNING per outage, not a traceback."""

    def __init__(self, *, report: Callable[[str], None] = warn) -> None:
        self.report = report
        self.down = False

    def call(self, fetch: Callable[[], T]) -> T | None:
        """``fetch()``, or ``None`` when the plugin is momentarily unreachable."""
        try:
            found = fetch()
        except (errors.TemporaryError, errors.PluginNotFound) as exc:
            if not self.down:
                self.report(f"{exc.message}; retrying")
            self.down = True
            return None
        if self.down:
            self.report("the plugin answers again")
        self.down = False
        return found


def wait(fetch: Callable[[], Snapshot], *, timeout: float | None, interval: float,
         show: Callable[[Snapshot], None], poller: Poller | None = None,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Snapshot:
    """Poll ``fetch`` until the group is Converged; raise ``NotConverged`` when it is stuck,
    ``WaitTimeout`` past ``timeout`` seconds (``None``: no limit). ``show`` sees every
    snapshot (the progress display)."""
    poller = poller or Poller()
    deadline = None if timeout is None else clock() + timeout
    last: Snapshot | None = None
    while True:
        found = poller.call(fetch)
        if found is not None:
            last = found
            show(found)
            if found.converged:
                return found
            if found.stuck:
                raise errors.NotConverged(
                    f"{found.gid} is not converging: {found.phase}: {found.reason}",
                    group=found.gid, phase=found.phase)
        if deadline is not None and clock() >= deadline:
            where = last.summary() if last else "the plugin did not answer"
            raise errors.WaitTimeout(f"timed out waiting for convergence; {where}")
        sleep(interval if deadline is None else max(0.0, min(interval, deadline - clock())))
