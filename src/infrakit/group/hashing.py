"""The v0.5 config hash (``infrakit.config_sha``): SHA-1 over Go-canonical JSON, base32.

InfraKit v0.5 hashes ``json.MarshalIndent(generic, "  ", "  ")`` of the group's Instance
section, then of its Flavor section (each reduced to Plugin and Properties, after a round
trip through ``interface{}`` that sorts keys and turns every number into a float64).
Reproducing those bytes exactly is what makes a hand-over between the original plugin
and ours a ``Noop``. The controller and the planner call :func:`config_sha`.
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import math
from typing import Any

from infrakit import errors
from infrakit.group import config

_PREFIX = "  "
_INDENT = "  "
# Go's encoder escapes these even though JSON does not require it (HTML safety).
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
            "\u2028": "\\u2028", "\u2029": "\\u2029"}


def config_sha(properties: config.Properties) -> str:
    """The 32-character hash a member created from ``properties`` is tagged with."""
    digest = hashlib.sha1()  # the wire format fixes SHA-1; it is no security measure here
    for section in (properties.instance, properties.flavor):
        reduced = {"Plugin": section.plugin, "Properties": section.properties}
        digest.update(canonical_json(reduced).encode("utf-8"))
    return base64.b32encode(digest.digest()).decode("ascii").lower().rstrip("=")


def canonical_json(value: Any) -> str:
    """``value`` as Go's ``json.MarshalIndent(v, "  ", "  ")`` writes a generic value."""
    parts: list[str] = []
    _write(value, parts, depth=0)
    return "".join(parts)


def _write(value: Any, out: list[str], *, depth: int) -> None:
    if isinstance(value, dict):
        _write_items(sorted(value.items()), out, depth=depth, brackets="{}")
    elif isinstance(value, list | tuple):
        _write_items([(None, item) for item in value], out, depth=depth, brackets="[]")
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int | float):
        out.append(go_float(value))
    else:
        raise errors.InvalidError(f"cannot hash a {type(value).__name__} value: {value!r}")


def _write_items(items: list[tuple[Any, Any]], out: list[str], *, depth: int,
                 brackets: str) -> None:
    if not items:
        out.append(brackets)
        return
    out.append(brackets[0])
    inner = "\n" + _PREFIX + _INDENT * (depth + 1)
    for n, (key, item) in enumerate(items):
        out.append(("," if n else "") + inner)
        if key is not None:
            out.append(_string(str(key)) + ": ")
        _write(item, out, depth=depth + 1)
    out.append("\n" + _PREFIX + _INDENT * depth + brackets[1])


def _string(text: str) -> str:
    chars = []
    for ch in text:
        if ch in _ESCAPES:
            chars.append(_ESCAPES[ch])
        elif ch < " ":
            chars.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            chars.append("\ufffd")  # Go replaces invalid UTF-8 with U+FFFD
        else:
            chars.append(ch)
    return '"' + "".join(chars) + '"'


def go_float(number: float) -> str:
    """A JSON number as Go's encoder prints a float64: ``1.0`` → ``1``, ``1e21`` → ``1e+21``."""
    try:
        value = float(number)
    except OverflowError:
        raise errors.InvalidError(f"number {number} does not fit a float64") from None
    if math.isnan(value) or math.isinf(value):
        raise errors.InvalidError(f"cannot hash the number {value}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    shortest = repr(value)
    if 1e-6 <= abs(value) < 1e21:
        return format(decimal.Decimal(shortest).normalize(), "f")
    mantissa, exponent = shortest.split("e")
    if exponent.startswith("-0"):
        exponent = "-" + exponent[2:]  # Go's encoder cleans e-07 up to e-7
    return f"{mantissa}e{exponent}"
