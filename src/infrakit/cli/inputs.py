"""Reading a command's input document: a path, a URL or ``-`` (stdin), rendered then parsed.

Every input goes through Jinja2 first (``infrakit.template``), then JSON or YAML: by the
extension, else JSON then YAML; ``-y`` says YAML whatever the name. Errors name the file
and line (``errors.UsageError``).
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

import pydantic
import yaml

from infrakit import errors, template, validation
from infrakit.spi.wire import Wire
from infrakit.template import fetch

STDIN = "<stdin>"

W = TypeVar("W", bound=Wire)


def read(source: str, *, as_yaml: bool = False) -> Any:
    """The data in ``source`` once rendered and parsed."""
    name = STDIN if source == "-" else source
    text = sys.stdin.read() if source == "-" else fetch.fetch(source)
    if not as_yaml:
        return template.loads(text, source=name)
    rendered = template.render(text, source=name)
    try:
        return yaml.safe_load(rendered)
    except yaml.MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise errors.UsageError(f"{name}{line}: invalid YAML: {what}", source=name) from None
    except yaml.YAMLError as exc:
        raise errors.UsageError(f"{name}: invalid YAML: {exc}", source=name) from None


def read_as(model: type[W], source: str, *, as_yaml: bool = False, what: str) -> W:
    """``source`` parsed into ``model``; a bad field is an ``InvalidError`` naming it."""
    return as_model(model, read(source, as_yaml=as_yaml),
                    where=f"{STDIN if source == '-' else source}: not a valid {what}")


def as_model(model: type[W], data: Any, *, where: str) -> W:
    """``data`` as ``model``; a bad field is an ``InvalidError``: ``where: Path: what``.

    Unknown keys are left to the plugin the document is sent to: it knows its own schema
    (and a v0.5 peer's extras must reach it)."""
    try:
        return model.from_wire(data)
    except pydantic.ValidationError as exc:
        raise errors.InvalidError(f"{where}: {validation.describe(exc)}") from None
