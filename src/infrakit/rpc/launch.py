"""The launch config: how ``infrakit plugin start`` and ``infrakit up`` start each plugin.

A list of rules (JSON or YAML, Jinja2-rendered), parsed here and used by :mod:`.starting`::

    [{"Plugin": "instance-file",
      "Launch": {"os": {"Cmd": "infrakit-instance-file --dir {{ env('HOME') }}/files",
                        "SamePgID": false}}}]

A plugin the config does not name starts from the ``infrakit.plugins`` entry-point group (how
third-party plugins start by name; ``cli.entry`` runs them). :class:`Outcome` is what
:mod:`.starting` and :mod:`.stopping` report for each plugin (the CLI prints it).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from pydantic import Field

from infrakit import errors, validation
from infrakit.spi.wire import Wire

ENTRY_POINT_GROUP = "infrakit.plugins"


class OsLaunch(Wire):
    """How the ``os`` executor starts a plugin."""

    cmd: str = Field(min_length=1)
    """A shell command line, run with ``/bin/sh -c``."""
    same_pg_id: bool = False
    """Stay in the CLI's process group (dies with it) instead of a session of its own."""


class Launch(Wire):
    """Per executor, how to start the plugin; only ``os`` is built in."""

    os: OsLaunch | None = Field(default=None, alias="os")
    """The ``os`` executor's settings."""


class Rule(Wire):
    """One entry of the launch config."""

    plugin: str = Field(min_length=1)
    """The plugin's name (its socket's file name)."""
    launch: Launch = Field(default_factory=Launch)
    """How to start it."""


_RULES = pydantic.TypeAdapter(list[Rule])


def parse_config(data: Any, *, source: str) -> dict[str, Rule]:
    """The rules in a parsed launch config, by plugin name; errors name the entry and field."""
    if data is not None and not isinstance(data, list):
        raise errors.InvalidError(f"launch config {source}: expected a list of {{Plugin, Launch}} "
                                  f"entries, got {type(data).__name__}")
    try:
        rules = _RULES.validate_python([] if data is None else data)
    except pydantic.ValidationError as exc:
        problems = validation.describe(exc)
        raise errors.InvalidError(f"launch config {source}: {problems}") from None
    by_name: dict[str, Rule] = {}
    for index, rule in enumerate(rules):
        if rule.plugin in by_name:
            raise errors.InvalidError(
                f"launch config {source}: [{index}].Plugin: {rule.plugin!r} appears twice")
        by_name[rule.plugin] = rule
    return by_name


def load_config(url: str) -> dict[str, Rule]:
    """Fetch, render (Jinja2) and parse the launch config at ``url``."""
    from infrakit import template  # Jinja2 is only needed when there is a config

    return parse_config(template.load(url), source=url)


NOTIFIERS = frozenset({"infrakit-instance-file", "infrakit-instance-process",
                       "infrakit.plugins.instance.file", "infrakit.plugins.instance.process"})
"""Our instance plugins that take ``--notify GROUP`` (console scripts and modules)."""
GROUP_PLUGINS = frozenset({"infrakit-group-default", "infrakit.group.serve"})
"""Our group plugin (console script and module)."""
_SHELL_OPERATORS = frozenset(";&|()<>`")


def notify_targets(names: Sequence[str], rules: Mapping[str, Rule]) -> dict[str, str]:
    """Which of ``names`` start with ``--notify GROUP``, and which group: our instance
    plugins, when our group plugin is among ``names`` or in the config (the first one
    named), unless their config line gives ``--notify`` itself or is more than one simple
    command (``a && b``: where the flag would go is not ours to guess)."""
    kinds = {name: _kind(name, rules) for name in dict.fromkeys([*names, *rules])}
    groups = [name for name, kind in kinds.items() if kind == "group"]
    if not groups:
        return {}
    return {name: groups[0] for name in names if kinds[name] == "instance"}


def _kind(name: str, rules: Mapping[str, Rule]) -> str:
    """``instance`` (ours, may be given --notify), ``group`` (ours), or ``""``."""
    rule = rules.get(name)
    if rule is not None:
        if rule.launch.os is None:
            return ""
        words = rule.launch.os.cmd.split()
        notifies = any(word.startswith("--notify") for word in words)
        if notifies or any(c in _SHELL_OPERATORS for c in rule.launch.os.cmd):
            return "group" if _names(words, GROUP_PLUGINS) else ""
    else:
        found = entry_points().get(name)
        words = [found.value.partition(":")[0]] if found is not None else []
    if _names(words, NOTIFIERS):
        return "instance"
    return "group" if _names(words, GROUP_PLUGINS) else ""


def _names(words: Sequence[str], wanted: frozenset[str]) -> bool:
    return any(word.rsplit("/", 1)[-1] in wanted for word in words)


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Plugins installed in the ``infrakit.plugins`` entry-point group, by name."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


@dataclasses.dataclass
class Outcome:
    """What happened to one plugin: a line for the user, or the error."""

    name: str
    message: str = ""
    error: errors.InfrakitError | None = None
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)
    """The process ``starting.start`` spawned (a shell or the entry-point runner)."""

    @property
    def ok(self) -> bool:
        return self.error is None


def failed(name: str, error: errors.InfrakitError) -> Outcome:
    """The outcome of a plugin that could not be started or stopped."""
    return Outcome(name=name, message=error.message, error=error)
