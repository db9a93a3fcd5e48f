"""Progress of long CLI operations, on stderr: a rich progress bar on a terminal, plain lines
(only when something changed) otherwise, so stdout keeps the lines scripts compare.

``group commit --wait`` shows members on the new config, ``group destroy`` and ``instance
destroy`` of many show what is gone. Use as a context manager; :meth:`Progress.update` as
often as you like.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import click


def is_terminal() -> bool:
    """Whether stderr (where progress goes) is a terminal."""
    return sys.stderr.isatty()


class Progress:
    """``done`` of ``total`` and a line saying where things stand."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._bar: Any = None
        self._task: Any = None
        self._last: tuple[int, int, str] | None = None

    def __enter__(self) -> Progress:
        if is_terminal():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[note]}"),
                            console=Console(stderr=True), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.title, total=None, note="")
        return self

    def update(self, done: int, total: int, note: str = "") -> None:
        if self._last == (done, total, note):
            return
        self._last = (done, total, note)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, note=note)
        else:
            click.echo(f"{self.title}: {done}/{total}{f' ({note})' if note else ''}", err=True)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
