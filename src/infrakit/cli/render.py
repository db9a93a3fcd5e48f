"""Printing results: plain columns for scripts, rich tables on a terminal, JSON or YAML.

Plain rows keep the original CLI's layout (``%-30s\\t%-30s\\t%s`` for instances) so scripts
written for InfraKit keep working; a terminal gets the same columns as a rich table.
``--output json|yaml`` prints the wire objects.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any

import click
import yaml

from infrakit import words
from infrakit.spi import instance

NO_LOGICAL_ID = "  -   "
"""What the LOGICAL column shows for cattle (as the original does)."""

INSTANCE_WIDTHS = (30, 30, 30)


def line(text: str) -> None:
    click.echo(text)


def document(data: Any, output: str) -> None:
    """``data`` (plain JSON values) as indented JSON or as YAML."""
    if output == "yaml":
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), nl=False)
    else:
        click.echo(json.dumps(data, indent=2))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, widths: Sequence[int],
          quiet: bool = False, sep: str = "\t") -> None:
    """Columns padded to ``widths`` (the last is not padded); a rich table on a terminal."""
    if not quiet and _is_terminal():
        _rich_table(headers, rows)
        return
    if not sep:  # without a separator, widen a column so that no cell runs into the next
        widths = [max([width, *(len(row[i]) + 2 for row in rows)])
                  for i, width in enumerate(widths)]
    if not quiet:
        click.echo(_row(headers, widths=widths, sep=sep))
    for row in rows:
        click.echo(_row(row, widths=widths, sep=sep))


def _row(cells: Sequence[str], *, widths: Sequence[int], sep: str) -> str:
    padded = [f"{cell:<{width}}" for cell, width in zip(cells[:-1], widths, strict=False)]
    return sep.join([*padded, cells[-1]])


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _rich_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    view = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for index, header in enumerate(headers):
        if index == 0:  # the IDs people copy: never broken mid-word, the other columns give
            widest = max([len(header), *(len(row[0]) for row in rows)])
            view.add_column(header, no_wrap=True, min_width=widest)
        else:
            view.add_column(header, overflow="fold")
    for row in rows:
        view.add_row(*row)
    Console().print(view)


def tags(values: dict[str, str]) -> str:
    """``k=v`` pairs, sorted, comma-joined."""
    return ",".join(sorted(f"{key}={value}" for key, value in values.items()))


def instances(found: Sequence[instance.Description], *, output: str, quiet: bool = False,
              properties: bool = False) -> None:
    """The ID, LOGICAL, TAGS (and PROPERTIES) columns of ``describe``."""
    if output != "table":
        document([each.to_wire() for each in found], output)
        return
    headers = ["ID", "LOGICAL", "TAGS"] + (["PROPERTIES"] if properties else [])
    rows = []
    for each in found:
        row = [each.id, each.logical_id or NO_LOGICAL_ID, tags(each.tags)]
        if properties:
            row.append(json.dumps(each.properties))
        rows.append(row)
    table(headers, rows, widths=INSTANCE_WIDTHS, quiet=quiet)


RECENT_ACTIONS = 10
"""How many of a group's recent actions ``group describe`` prints under its members."""

MEMBER_HEADERS = ("INSTANCE", "LOGICAL", "STATE", "HEALTH", "CREATED", "CONFIG",
                  "LAST TRANSITION")
MEMBER_WIDTHS = (30, 16, 10, 10, 26, 14, 40)


def iso(when: Any) -> str:
    """A time (seconds since the epoch, or a datetime) as ISO 8601 in UTC
    (``2024-05-01T10:00:03Z``): the one form of time in every output."""
    try:
        moment = when if isinstance(when, datetime.datetime) else \
            datetime.datetime.fromtimestamp(float(when), datetime.UTC)
        return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


plural = words.plural


def status(data: Any) -> None:
    """A group's (ext) Status under its members: the phase and its reason, the counts, the
    rolling update, the members whose removal waits on their flavor (and why), the member
    table and the recent actions (older peers send less: what
    is missing is left out)."""
    if not isinstance(data, dict) or "Phase" not in data:
        return
    reason = f" - {data['Reason']}" if data.get("Reason") else ""
    size = _int(data.get("Size"))
    click.echo(f"\nSTATUS  {data['Phase']}{reason} "
               f"({_int(data.get('Members'))}/{plural(size, 'member')})")
    counts = data.get("Counts")
    if isinstance(counts, dict):
        click.echo(f"COUNTS  {_counts(counts)}")
    update = data.get("Update")
    if isinstance(update, dict) and not update.get("Idle"):
        state = "paused" if update.get("Paused") else "in flight"
        click.echo(f"UPDATE  to {update.get('Target', '?')}: {state}, "
                   f"{len(update.get('Done') or [])} replaced")
    waiting = data.get("Waiting")
    if isinstance(waiting, dict):  # (ext) removals the flavor said not now to
        for iid, why in sorted(waiting.items()):
            click.echo(f"WAITING {iid}: {why}")
    members = [each for each in data.get("Instances") or [] if isinstance(each, dict)]
    if members:
        click.echo("")
        table(MEMBER_HEADERS, [_member(each) for each in members], widths=MEMBER_WIDTHS)
        more = _int(data.get("MoreInstances"))
        if more:
            click.echo(f"... and {plural(more, 'more member')} (see the counts)")
    actions = [each for each in data.get("Actions") or [] if isinstance(each, dict)]
    if actions:
        click.echo("RECENT ACTIONS")
    for action in actions[-RECENT_ACTIONS:]:
        times = f" (x{action['Repeated']})" if _int(action.get("Repeated", 1)) > 1 else ""
        click.echo(f"  {iso(action.get('Time', 0))}  {action.get('Message', '')}{times}")


def _counts(counts: dict[str, Any]) -> str:
    expected, existing = _int(counts.get("Expected")), _int(counts.get("Existing"))
    text = (f"{expected} expected: {existing} exist ({_int(counts.get('Current'))} on the "
            f"committed config), {_int(counts.get('Creating'))} being created, "
            f"{_int(counts.get('Removing'))} being removed")
    if counts.get("Probed"):
        text += (f"; {_int(counts.get('Healthy'))} Healthy, {_int(counts.get('Unhealthy'))} "
                 f"Unhealthy, {_int(counts.get('Unknown'))} Unknown")
    else:
        text += "; health not probed"
    return text


def _member(row: dict[str, Any]) -> list[str]:
    config = str(row.get("Config") or "-")
    if row.get("Version"):
        config += f" ({row['Version']})"
    transition = str(row.get("Transition") or "")
    if row.get("Since") is not None:
        transition += f" {iso(row['Since'])}"
    created = row.get("Created")
    return [str(row.get("ID") or "(creating)"), str(row.get("LogicalID") or NO_LOGICAL_ID),
            str(row.get("State") or ""), str(row.get("Health") or "-"),
            iso(created) if created is not None else "-", config, transition.strip()]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
