"""Options and argument types shared by the ``infrakit`` commands, as decorators.

Every command module builds its commands from these, so a flag means the same thing
everywhere: ``--output``, ``-q``, ``-y``, ``--tags k=v``, Go-style durations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import click

from infrakit import durations

F = TypeVar("F", bound=Callable[..., Any])

OUTPUTS = ("table", "json", "yaml")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the root command parsed: the root context's ``obj``."""

    timeout: float = 30.0
    """Seconds each remote call may take."""
    debug: bool = False
    """Show tracebacks instead of one-line errors."""
    host: str | None = None
    """``--host URL``: the plugin (manager, group …) to talk to instead of local sockets."""


class Duration(click.ParamType[float]):
    """A Go-style duration (``500ms``, ``10s``, ``1m``), in seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return durations.seconds(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Tag(click.ParamType[dict[str, str]]):
    """``key=value`` (several may be joined by commas); yields a dict."""

    name = "key=value"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dict[str, str]:
        if isinstance(value, dict):
            return value
        tags: dict[str, str] = {}
        for item in str(value).split(","):
            key, equals, val = item.partition("=")
            if not key.strip() or not equals:
                self.fail(f"expected KEY=VALUE, got {item!r}", param, ctx)
            tags[key.strip()] = val
        return tags


DURATION = Duration()
TAG = Tag()


def merged(tag_dicts: tuple[dict[str, str], ...]) -> dict[str, str]:
    """Repeated ``--tags`` options as one dict (later ones win)."""
    result: dict[str, str] = {}
    for tags in tag_dicts:
        result.update(tags)
    return result


def output(*, default: str = "table", choices: tuple[str, ...] = OUTPUTS) -> Callable[[F], F]:
    """``-o/--output table|json|yaml``: json and yaml print the wire objects."""
    return click.option("-o", "--output", type=click.Choice(choices), default=default,
                        show_default=True, help="How to print the result.")


def quiet(function: F) -> F:
    """``-q/--quiet``: rows only, no header (what scripts read)."""
    return click.option("-q", "--quiet", is_flag=True,
                        help="Print rows without the column headers.")(function)


def yaml_input(function: F) -> F:
    """``-y/--yaml``: read the input as YAML even when its name does not say so."""
    return click.option("-y", "--yaml", "as_yaml", is_flag=True,
                        help="Parse the input as YAML (default: by extension, else JSON "
                             "then YAML).")(function)


def document(name: str = "file") -> Callable[[F], F]:
    """A positional FILE|URL|- argument, rendered with Jinja2 then parsed."""
    return click.argument(name, metavar=name.upper() + "|-")


def tags(help_text: str) -> Callable[[F], F]:
    """``--tags k=v`` (repeatable; commas join several); the value is a tuple of dicts."""
    return click.option("--tags", "tags", type=TAG, multiple=True, metavar="KEY=VALUE",
                        help=help_text + " (repeatable; commas join several)")


def interval(function: F) -> F:
    """``--interval D``: how often a waiting or watching command asks the plugin."""
    return click.option("--interval", type=DURATION, default="1s", show_default=True,
                        metavar="DURATION",
                        help="How often to ask the plugin while waiting or watching.")(function)
