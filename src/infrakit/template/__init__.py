"""Jinja2 rendering of configs (sandboxed, strict), with InfraKit-like functions.

The CLI renders every JSON/YAML input with :func:`load`/:func:`loads`; plugins render their own
template strings (a flavor's init lines, a health probe's target) with :func:`render`. Every
failure is an ``errors.UsageError`` naming the file, the line and what went wrong.

Functions available in templates: ``env(name, default=None)``, ``include(path)`` (relative to
the including template), ``var(name, default)`` for values passed in (they are also plain
names), ``json(value)`` / ``yaml(value)`` (also as filters), and Jinja's own filters
(``tojson``, ``lower``, ``upper``, ``default`` …). Comments are written ``{## … ##}``, so that
the shell's ``${#var}`` in an init script is not taken for one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infrakit.template.engine import check, render
    from infrakit.template.loading import load, loads, parse

__all__ = ["check", "load", "loads", "parse", "render"]

_HOME = {"check": "engine", "render": "engine", "load": "loading", "loads": "loading",
         "parse": "loading"}


def __getattr__(name: str) -> Any:
    # Jinja2 and PyYAML load on first use: a plugin that imports this package but never
    # renders (flavor-vanilla without templates) is spared them (~4 MB of RSS each process).
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"infrakit.template.{home}"), name)
    globals()[name] = value
    return value
