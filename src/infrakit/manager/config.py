"""The config of ``infrakit up`` (embedded mode): the plugins to run and the groups to commit.

YAML or JSON, rendered with Jinja2 first (``infrakit.template.load``)::

    Manager:                    # optional; these are the defaults
      Name: group               # the manager's socket: `infrakit group ...` talks to it
      PollInterval: 1s          # how often the group controller reconciles each group
      StatePoll: 1s             # how often rolling-update states are saved
      MaxParallel: 0            # creations/removals at once across groups (0: no limit)
    Plugins:                    # started as child processes, restarted when they die
      - Plugin: instance-process
        Launch: {os: {Cmd: "infrakit-instance-process --dir {{ env('INFRAKIT_HOME') }}/p"}}
      - Plugin: flavor-vanilla  # no Launch: started from its `infrakit.plugins` entry point
    Groups:                     # committed, in order, once the manager leads
      - Plugin: group
        Properties: {ID: web, Properties: {...}}

``Plugins`` entries are those of the launch config of ``infrakit plugin start``
(:mod:`infrakit.rpc.launch`). Unknown keys are errors here, down to each group spec's ``ID`` and
``Properties`` (what is inside belongs to the group plugin, which checks it at commit): a
typo must not pass silently. Errors read as everywhere (:mod:`infrakit.validation`).
"""

from __future__ import annotations

from typing import Any

import pydantic
from pydantic import ConfigDict, Field

from infrakit import durations, errors, template, validation
from infrakit.rpc import launch
from infrakit.spi import group, plugin
from infrakit.spi.wire import go_name


class _Strict(pydantic.BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid",
                              alias_generator=go_name, use_attribute_docstrings=True)


class ManagerSettings(_Strict):
    """``Manager``: how the embedded manager and group controller run."""

    name: str = "group"
    """The manager's socket name."""
    poll_interval: durations.Seconds = 1.0
    """How often the group controller reconciles each group."""
    state_poll: durations.Seconds = 1.0
    """How often rolling-update states are read and saved."""
    max_parallel: int = Field(0, ge=0)
    """Creations and removals at once across groups (0: no limit)."""


class Config(_Strict):
    """The whole ``infrakit up`` config."""

    manager: ManagerSettings = Field(default_factory=ManagerSettings)
    """How the manager runs."""
    plugins: list[launch.Rule] = Field(default_factory=list)
    """The plugins to run: ``{Plugin, Launch}`` as in ``infrakit plugin start``'s config."""
    groups: list[plugin.Spec] = Field(default_factory=list)
    """The groups to commit: ``{Plugin, Properties: group Spec}``."""


class Up:
    """A checked config: settings, launch rules by plugin name, group specs in order."""

    def __init__(self, config: Config, *, source: str) -> None:
        self.source = source
        self.manager = config.manager
        self.names = [rule.plugin for rule in config.plugins]
        """The plugins to run, in order."""
        _no_twice(self.names, source=source, what="Plugins", field="Plugin")
        # An entry without Launch starts from its entry point: launch looks those up only
        # for names absent from the rules.
        self.rules = {rule.plugin: rule for rule in config.plugins if rule.launch.os is not None}
        self.groups = [_group(entry, index, source=source)
                       for index, entry in enumerate(config.groups)]
        _no_twice([spec.id for spec in self.groups], source=source, what="Groups",
                  field="Properties.ID")


def _no_twice(names: list[str], *, source: str, what: str, field: str) -> None:
    for index, name in enumerate(names):
        if name in names[:index]:
            raise errors.InvalidError(f"{source}: {what}[{index}].{field}: {name!r} appears "
                                      "twice", field=what)


def _group(entry: plugin.Spec, index: int, *, source: str) -> group.Spec:
    where = f"Groups[{index}].Properties"
    spec = validation.parse(group.Spec, entry.properties, root=where, where=source)
    if not spec.id.strip():
        raise errors.InvalidError(f"{source}: {where}.ID must not be blank", field="ID")
    return spec


def parse(data: Any, *, source: str) -> Up:
    """Check parsed config data; errors name the file and the field."""
    config = validation.parse(Config, {} if data is None else data, where=source)
    return Up(config, source=source)


def load(url: str) -> Up:
    """Fetch, render (Jinja2) and check the config at ``url`` (a path or a URL)."""
    return parse(template.load(url), source=url)
