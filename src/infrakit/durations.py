"""Go-style durations (``500ms``, ``10s``, ``1m30s``) as float seconds, both ways.

InfraKit's flags and configs spell durations the way Go's ``time.ParseDuration`` reads
them. The group config (``Seconds`` fields), the CLI flags (``parse_duration``) and the
reasons the controller writes (``format_duration``) all use this module.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from infrakit import errors

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_EXPECTED = "a duration such as 500ms, 10s, 1m or 1h30m"


def parse_duration(text: str, *, field: str = "duration") -> float:
    """``"1m30s"`` → ``90.0``; ``InvalidError`` naming ``field`` when ``text`` is not one.

    Accepts what Go's ``time.ParseDuration`` accepts: an optional sign, then one or more
    decimal numbers each followed by a unit (ns, us, ms, s, m, h); a bare ``0`` too.
    """
    seconds = _parse(text) if isinstance(text, str) else None
    if seconds is None:
        raise errors.InvalidError(f"{field}: expected {_EXPECTED}, got {text!r}", field=field)
    return seconds


def _parse(text: str) -> float | None:
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body[1:] if body[:1] in ("+", "-") else body
    if body == "0":
        return 0.0
    total, at = 0.0, 0
    while at < len(body):
        match = _PART.match(body, at)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        at = match.end()
    return sign * total if body else None


def seconds(value: Any) -> float:
    """A config value as seconds: a duration string, or a bare number of seconds.

    Raises ``ValueError`` (pydantic turns it into a message naming the field) for
    anything else, negative durations included.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected {_EXPECTED}, got {value!r}")
    result = float(value) if not isinstance(value, str) else _parse(value)
    if result is None:
        raise ValueError(f"expected {_EXPECTED}, got {value!r}")
    if result < 0:
        raise ValueError(f"expected a duration that is not negative, got {value!r}")
    return result


Seconds = Annotated[float, BeforeValidator(seconds)]
"""A model field written as a Go duration (or a number of seconds), held as seconds."""


def format_duration(value: float) -> str:
    """``90.0`` → ``"90s"``, ``0.25`` → ``"250ms"``: short and readable, for messages."""
    if 0 < abs(value) < 1:
        return f"{round(value * 1000, 3):g}ms"
    return f"{round(value, 3):g}s"
