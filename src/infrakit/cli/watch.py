"""``infrakit group describe [ID] --watch``: follow groups until Ctrl-C.

On a terminal, a rich Live view (members, health, phase and recent actions) redrawn when
something changed; otherwise plain lines, printed only for what changed: the status line,
members that came or went, new actions. Ctrl-C ends the watch normally (exit 0).
:func:`changes` is pure, so the plain lines are tested on tables of snapshots.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from infrakit.cli import follow, render
from infrakit.spi import group

RECENT = 10
"""Actions the live view shows per group."""


@dataclasses.dataclass(frozen=True)
class Seen:
    """One group at one poll, as the watch compares it."""

    snapshot: follow.Snapshot
    members: tuple[str, ...]
    actions: tuple[tuple[float, str, int], ...]
    """(time, message, repeated) of each recent action, oldest first."""
    description: group.Description

    def line(self) -> str:
        snap = self.snapshot
        phase = snap.phase or ("Converged" if snap.converged else "not converged")
        reason = f" - {snap.reason}" if snap.reason else ""
        return (f"{snap.gid}  {phase}{reason} ({snap.done}/"
                f"{render.plural(snap.total, 'member')} on the config, {snap.members} there)")


def seen(gid: str, description: group.Description) -> Seen:
    snap = follow.snapshot(gid, description)
    actions = [a for a in snap.status.get("Actions") or [] if isinstance(a, dict)]
    return Seen(snapshot=snap, members=tuple(sorted(i.id for i in description.instances)),
                actions=tuple((float(a.get("Time", 0)), str(a.get("Message", "")),
                               int(a.get("Repeated", 1))) for a in actions),
                description=description)


def changes(before: Seen | None, now: Seen) -> list[str]:
    """The plain lines for what changed in one group since ``before`` (``None``: first look)."""
    lines: list[str] = []
    if before is None or before.line() != now.line():
        lines.append(now.line())
    old = set(before.members) if before else set()
    if before is not None:
        lines += [f"{now.snapshot.gid}  + {member}" for member in now.members if member not in old]
        lines += [f"{now.snapshot.gid}  - {member}" for member in before.members
                  if member not in now.members]
    known = set(before.actions) if before else set()
    fresh = [a for a in now.actions if a not in known]
    for when, message, repeated in fresh[-RECENT:] if before is None else fresh:
        again = f" (x{repeated})" if repeated > 1 else ""
        lines.append(f"{now.snapshot.gid}  {render.iso(when)}  {message}{again}")
    return lines


def run(fetch: Callable[[], list[tuple[str, group.Description]]], *, interval: float,
        sleep: Callable[[float], None] = time.sleep) -> list[Seen]:
    """Poll ``fetch`` every ``interval`` seconds and show what changed, until Ctrl-C; the
    last thing seen."""
    poller = follow.Poller()
    last: dict[str, Seen] = {}
    live = _live() if render._is_terminal() else None
    try:
        while True:
            found = poller.call(fetch)
            if found is not None:
                now = {gid: seen(gid, description) for gid, description in found}
                if live is not None:
                    live.update(_view(list(now.values())), refresh=True)
                else:
                    for gid, current in now.items():
                        for text in changes(last.get(gid), current):
                            click.echo(text)
                    for gid in set(last) - set(now):
                        click.echo(f"{gid}  gone")
                last = now
            sleep(interval)
    except KeyboardInterrupt:
        return list(last.values())
    finally:
        if live is not None:
            live.stop()


def _live() -> Any:
    from rich.live import Live

    live = Live(auto_refresh=False)
    live.start()
    return live


def _view(groups: Sequence[Seen]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for each in groups:
        parts.append(Text(each.line(), style="bold"))
        members = Table(box=None, pad_edge=False)
        members.add_column("ID", no_wrap=True,
                           min_width=max([2, *(len(m) for m in each.members)]))
        for header in ("LOGICAL", "HEALTH", "STATE", "CREATED"):
            members.add_column(header, overflow="fold")
        for row in _member_rows(each):
            members.add_row(*row)
        parts.append(members)
        for when, message, repeated in each.actions[-RECENT:]:
            again = f" (x{repeated})" if repeated > 1 else ""
            parts.append(Text(f"  {render.iso(when)}  {message}{again}"))
        parts.append(Text(""))
    return Group(*parts)


def _member_rows(each: Seen) -> list[list[str]]:
    listed = [m for m in each.snapshot.status.get("Instances") or [] if isinstance(m, dict)]
    if not listed:  # a plugin without (ext) Status: the members from DescribeGroup
        return [[i.id, i.logical_id or "-", "", "", ""] for i in each.description.instances]
    rows = []
    for member in listed:
        created = member.get("Created")
        rows.append([str(member.get("ID") or "(creating)"), str(member.get("LogicalID") or "-"),
                     str(member.get("Health") or ""), str(member.get("State") or ""),
                     render.iso(created) if isinstance(created, int | float) else ""])
    return rows
