"""Load a config: fetch it, render it as a template, parse the result as JSON or YAML.

The CLI calls :func:`load` for a file or URL it was given and :func:`loads` for text it read
itself (stdin). JSON or YAML is chosen by the extension (``.json``, ``.yaml``, ``.yml``); any
other name is tried as JSON, then as YAML.
"""

from __future__ import annotations

import json
import posixpath
import urllib.parse
from typing import Any, Literal

import yaml

from infrakit import errors
from infrakit.template import engine, fetch

Kind = Literal["json", "yaml"]
"""Forces the syntax (the CLI's ``-y``); ``None`` chooses by extension, then by content."""


def load(url_or_path: str, *, variables: dict[str, Any] | None = None,
         kind: Kind | None = None) -> Any:
    """The data in the template at ``url_or_path`` once rendered with ``variables``."""
    return loads(fetch.fetch(url_or_path), source=url_or_path, variables=variables, kind=kind)


def loads(text: str, *, source: str | None = None, variables: dict[str, Any] | None = None,
          kind: Kind | None = None) -> Any:
    """The data in template ``text`` once rendered; ``source`` names it in errors."""
    rendered = engine.render(text, source=source, variables=variables)
    return parse(rendered, source=source, rendered=rendered != text, kind=kind)


def parse(text: str, *, source: str | None = None, rendered: bool = False,
          kind: Kind | None = None) -> Any:
    """``text`` as JSON or YAML; ``rendered`` says line numbers refer to the rendered text."""
    name = source or engine.STRING_SOURCE
    kind = kind or _kind(source)
    if kind == "json":
        return _json(text, name, rendered=rendered)
    if kind == "yaml":
        return _yaml(text, name, rendered=rendered)
    try:
        return json.loads(text)
    except ValueError:
        pass
    if text.lstrip().startswith(("{", "[")):
        # Meant as JSON: the JSON error is the useful one.
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return _json(text, name, rendered=rendered)
    return _yaml(text, name, rendered=rendered)


def _kind(source: str | None) -> Kind | None:
    if source is None:
        return None
    path = urllib.parse.urlsplit(source).path if fetch.is_url(source) else source
    extension = posixpath.splitext(path)[1].lower()
    if extension == ".json":
        return "json"
    return "yaml" if extension in (".yaml", ".yml") else None


def _json(text: str, name: str, *, rendered: bool) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(name, exc.lineno, f"invalid JSON: {exc.msg}", rendered=rendered) from None


def _yaml(text: str, name: str, *, rendered: bool) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = None if exc.problem_mark is None else exc.problem_mark.line + 1
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise _error(name, line, f"invalid YAML: {what}", rendered=rendered) from None
    except yaml.YAMLError as exc:
        raise _error(name, None, f"invalid YAML: {exc}", rendered=rendered) from None


def _error(name: str, line: int | None, what: str, *, rendered: bool) -> errors.UsageError:
    where = name if line is None else f"{name}:{line}"
    suffix = " (line of the rendered template)" if rendered and line is not None else ""
    return errors.UsageError(f"{where}: {what}{suffix}", source=name, line=line)
