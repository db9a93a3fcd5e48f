"""Parse a plugin's raw ``Properties`` into its model, or raise ``InvalidError`` naming the field.

Every plugin calls :func:`parse` from ``validate`` and from the methods that receive properties,
so a malformed request gets ``Properties.Init[2]: expected a string`` instead of a traceback.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from infrakit import errors

M = TypeVar("M", bound=pydantic.BaseModel)

# Short phrases for pydantic's most common error types; anything else keeps pydantic's text.
_PHRASES = {
    "missing": "required",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
}


def parse(model: type[M], raw: Any, *, field: str = "Properties") -> M:
    """``raw`` as a ``model``; ``null`` reads as ``{}`` (as Go decodes a nil blob)."""
    try:
        return model.model_validate({} if raw is None else raw)
    except pydantic.ValidationError as exc:
        raise errors.InvalidError(explain(exc, field=field), field=field) from None


def explain(exc: pydantic.ValidationError, *, field: str) -> str:
    """Every problem of ``exc`` as ``path: what``, joined by ``; ``."""
    return "; ".join(
        f"{path(field, problem['loc'])}: {_phrase(problem)}" for problem in exc.errors()
    )


def path(field: str, loc: tuple[int | str, ...]) -> str:
    """``("Init", 2)`` under ``Properties`` → ``Properties.Init[2]``."""
    text = field
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _phrase(problem: Any) -> str:
    phrase = _PHRASES.get(problem["type"])
    if phrase is not None:
        return phrase
    message = str(problem["msg"])
    # Our own validators raise ValueError; pydantic prefixes their text.
    return message.removeprefix("Value error, ")
