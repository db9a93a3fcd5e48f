"""Parse a plugin's raw ``Properties`` into its model, or raise ``InvalidError`` naming the field.

Every plugin calls :func:`parse` from ``validate`` and from the methods that receive properties,
so a malformed request gets ``Properties.Init[2]: expected a string`` instead of a traceback,
and a typo gets ``Properties.Inits: unknown field; did you mean Init?`` instead of being
ignored (:mod:`infrakit.validation`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from infrakit import validation

M = TypeVar("M", bound=pydantic.BaseModel)


def parse(model: type[M], raw: Any, *, field: str = "Properties", strict: bool = True) -> M:
    """``raw`` as a ``model``; ``null`` reads as ``{}`` (as Go decodes a nil blob). With
    ``strict`` a key ``model`` does not know is an error."""
    return validation.parse(model, {} if raw is None else raw, root=field, strict=strict)
