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
    for header in headers:
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


def status(data: Any) -> None:
    """A group's (ext) Status under its members: phase, reason, and the recent actions."""
    if not isinstance(data, dict) or "Phase" not in data:
        return
    reason = f" - {data['Reason']}" if data.get("Reason") else ""
    click.echo(f"\nSTATUS  {data['Phase']}{reason} "
               f"({data.get('Members', 0)}/{data.get('Size', 0)} members)")
    update = data.get("Update")
    if isinstance(update, dict):
        state = "paused" if update.get("Paused") else "in flight"
        click.echo(f"UPDATE  to {update.get('Target', '?')}: {state}, "
                   f"{len(update.get('Done') or [])} replaced")
    actions = [each for each in data.get("Actions") or [] if isinstance(each, dict)]
    if actions:
        click.echo("RECENT ACTIONS")
    for action in actions[-RECENT_ACTIONS:]:
        when = datetime.datetime.fromtimestamp(float(action.get("Time", 0)))
        times = f" (x{action['Repeated']})" if action.get("Repeated", 1) > 1 else ""
        click.echo(f"  {when:%H:%M:%S}  {action.get('Message', '')}{times}")
