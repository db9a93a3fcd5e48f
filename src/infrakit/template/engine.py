"""Render one template string: a sandboxed Jinja2 environment with strict undefined values.

Called by :mod:`infrakit.template.loading` for whole config files and by plugins for short
strings (a flavor's init lines, a probe's target). Compiled templates are cached by text, so a
probe rendered every few seconds is compiled once.
"""

from __future__ import annotations

import contextvars
import functools
import json as jsonlib
import os
import types
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.sandbox
import jinja2.utils
import yaml as yamllib

from infrakit import errors
from infrakit.template import fetch

STRING_SOURCE = "<string>"
"""How errors name a template that came from no file."""

_MAX_INCLUDE_DEPTH = 16
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("include_depth", default=0)
_MISSING: Any = object()


def render(text: str, *, source: str | None = None, variables: dict[str, Any] | None = None) -> str:
    """``text`` rendered with ``variables``; ``source`` names it in errors and anchors includes."""
    name = source or STRING_SOURCE
    template = _compile(text, name)
    try:
        return template.render(variables or {})
    except errors.UsageError:
        raise  # from an included template: it already names its own file and line
    except Exception as exc:
        raise _usage_error(name, exc) from None


def check(text: str, *, source: str | None = None) -> None:
    """Raise ``UsageError`` when ``text`` is not a well-formed template (nothing is rendered)."""
    _compile(text, source or STRING_SOURCE)


def _env(name: str, default: Any = _MISSING) -> Any:
    value = os.environ.get(name)
    if value is not None:
        return value
    if default is _MISSING:
        # Rendering None would put the text "None" in a path (./None/...): refuse instead.
        raise jinja2.UndefinedError(
            f"environment variable {name!r} is not set (set it, or give a default: "
            f"env({name!r}, \"...\"))")
    return default


@jinja2.pass_context
def _var(context: jinja2.runtime.Context, name: str, default: Any = _MISSING) -> Any:
    value = context.resolve_or_missing(name)
    if value is jinja2.utils.missing or name in _ENVIRONMENT.globals:
        if default is _MISSING:
            raise jinja2.UndefinedError(f"no variable {name!r} was passed in")
        return default
    return value


@jinja2.pass_context
def _include(context: jinja2.runtime.Context, path: str) -> str:
    depth = _depth.get()
    if depth >= _MAX_INCLUDE_DEPTH:
        raise jinja2.TemplateRuntimeError(
            f"include {path!r}: nested deeper than {_MAX_INCLUDE_DEPTH} (an include loop?)"
        )
    includer = None if context.name == STRING_SOURCE else context.name
    target = fetch.resolve(path, relative_to=includer)
    try:
        text = fetch.fetch(target)
    except errors.UsageError as exc:
        # Reported as a runtime error so that the includer's line is named too.
        raise jinja2.TemplateRuntimeError(f"include {path!r}: {exc.message}") from None
    variables = {k: v for k, v in context.parent.items() if k not in _ENVIRONMENT.globals}
    token = _depth.set(depth + 1)
    try:
        return render(text, source=target, variables=variables)
    finally:
        _depth.reset(token)


def _json(value: Any, indent: int | None = None) -> str:
    return jsonlib.dumps(value, indent=indent)


def _yaml(value: Any) -> str:
    return yamllib.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")


def _make_environment() -> jinja2.sandbox.SandboxedEnvironment:
    environment = jinja2.sandbox.SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
        # Comments are {## ... ##}: Jinja's {# would swallow the shell's ${#var} in init scripts.
        comment_start_string="{##", comment_end_string="##}",
    )
    environment.globals.update(env=_env, include=_include, var=_var, json=_json, yaml=_yaml)
    environment.filters.update(json=_json, yaml=_yaml)
    return environment


_ENVIRONMENT = _make_environment()


@functools.lru_cache(maxsize=512)
def _compile(text: str, name: str) -> jinja2.Template:
    try:
        code = _ENVIRONMENT.compile(text, name=name, filename=name)
    except jinja2.TemplateSyntaxError as exc:
        raise errors.UsageError(
            f"{name}:{exc.lineno}: template syntax error: {exc.message}",
            source=name, line=exc.lineno,
        ) from None
    return _ENVIRONMENT.template_class.from_code(
        _ENVIRONMENT, code, _ENVIRONMENT.make_globals(None)
    )


def _usage_error(name: str, exc: Exception) -> errors.UsageError:
    line = _template_line(exc.__traceback__, name)
    where = name if line is None else f"{name}:{line}"
    if isinstance(exc, jinja2.UndefinedError):
        what = f"undefined value: {exc.message}"
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        what = f"not allowed in a template: {exc.message}"
    elif isinstance(exc, jinja2.TemplateError):
        what = f"template error: {exc.message}"
    else:
        what = f"template error: {type(exc).__name__}: {exc}"
    return errors.UsageError(f"{where}: {what}", source=name, line=line)


def _template_line(trace: types.TracebackType | None, name: str) -> int | None:
    """The line of the template where the error arose: Jinja maps its frames to the template."""
    line = None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == name:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line
