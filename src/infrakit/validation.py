"""One way to say what is wrong with a document: ``<path>: <what was wrong; what was expected>``.

Every place that turns input into a model (a group spec, a plugin's Properties, a config file,
a CLI input) reports its problems through :func:`describe` or :func:`message`, so a user sees
one format everywhere: ``Properties.Allocation.Size: expected an integer``,
``Properties.Helth: unknown field; did you mean Health?``, list items as ``Init[2]``.

Wire models tolerate unknown keys (a v0.5 peer's extras must survive a round trip); the
documents *we* own are checked with :func:`unknown_fields` (or :func:`parse`), which walks the
raw data along a model's fields, so that a typo is refused instead of silently ignored. Fields
typed ``Any`` (a plugin's ``Properties`` blob) are not entered: they belong to their plugin.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import pydantic

from infrakit import errors

M = TypeVar("M", bound=pydantic.BaseModel)

# Short phrases for pydantic's common error types; anything else keeps pydantic's own text.
_PHRASES = {
    "missing": "required",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "extra_forbidden": "unknown field",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: where (a dotted path, ``""`` for the whole) and what."""

    path: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}" if self.path else self.what


def join(root: str, loc: Iterable[int | str]) -> str:
    """``("Init", 2)`` under ``Properties`` → ``Properties.Init[2]``."""
    text = root
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def problems(exc: pydantic.ValidationError, *, root: str = "") -> list[Problem]:
    """Every problem pydantic found, with paths under ``root``."""
    return [Problem(join(root, item["loc"]), _phrase(item))
            for item in exc.errors(include_url=False)]


def message(found: Sequence[Problem], *, limit: int | None = None) -> str:
    """The problems as one line, joined by ``; `` (the first ``limit`` and a count of the rest)."""
    shown = found if limit is None else found[:limit]
    text = "; ".join(str(problem) for problem in shown)
    rest = len(found) - len(shown)
    return f"{text}; and {rest} more" if rest > 0 else text


def describe(exc: pydantic.ValidationError, *, root: str = "", limit: int | None = None) -> str:
    """``exc`` as one line: :func:`problems` joined by :func:`message`."""
    return message(problems(exc, root=root), limit=limit)


def invalid(found: Sequence[Problem], *, where: str = "", field: str | None = None
            ) -> errors.InvalidError:
    """An ``InvalidError`` for ``found`` (prefixed ``where: `` when given), naming the first
    problem's path as its field unless ``field`` says otherwise."""
    text = message(found)
    first = found[0].path if found else ""
    return errors.InvalidError(f"{where}: {text}" if where else text,
                               field=field if field is not None else first)


def parse(model: type[M], data: Any, *, root: str = "", where: str = "",
          strict: bool = True) -> M:
    """``data`` as ``model``, or ``InvalidError`` listing every problem; with ``strict``, keys
    that ``model`` does not know are problems too (:func:`unknown_fields`)."""
    found = unknown_fields(model, data, root=root) if strict else []
    try:
        parsed = model.model_validate(data)
    except pydantic.ValidationError as exc:
        found = merge(found, problems(exc, root=root))
        raise invalid(found, where=where, field=root if where else None) from None
    if found:
        raise invalid(found, where=where, field=root if where else None)
    return parsed


def merge(unknown: list[Problem], others: list[Problem]) -> list[Problem]:
    """``unknown`` then ``others``, without pydantic's own report of a key already named
    unknown (a model that forbids extras reports it too, without a suggestion)."""
    named = {problem.path for problem in unknown}
    return [*unknown, *(p for p in others if p.path not in named)]


def unknown_field(key: str, known: Iterable[str], *, path: str) -> Problem:
    """``path: unknown field; did you mean X?`` (the closest of ``known``), or the list."""
    choices = sorted(set(known))
    suggestion = closest(key, choices)
    if suggestion is not None:
        return Problem(path, f"unknown field; did you mean {suggestion}?")
    return Problem(path, f"unknown field; expected one of {', '.join(choices)}")


def closest(key: str, choices: Sequence[str]) -> str | None:
    """The choice ``key`` most likely misspells, if any is close (case is ignored)."""
    by_lower = {choice.lower(): choice for choice in choices}
    if key.lower() in by_lower:
        return by_lower[key.lower()]
    found = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


def unknown_fields(model: type[pydantic.BaseModel], data: Any, *, root: str = ""
                   ) -> list[Problem]:
    """The keys of ``data`` (and of its nested objects) that ``model`` has no field for.

    Nested objects are checked when their field is a model, a list or map of models, or an
    optional one; anything else (``Any``, ``dict[str, str]``) is taken as it is. Values of
    the wrong type are left for pydantic to report.
    """
    if not isinstance(data, Mapping):
        return []
    fields = _fields(model)
    found: list[Problem] = []
    for key, value in data.items():
        path = join(root, [str(key)])
        info = fields.get(key)
        if info is None:
            found.append(unknown_field(str(key), _wire_names(model).values(), path=path))
        else:
            found.extend(_nested(info.annotation, value, path=path))
    return found


def _fields(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """Each field by the key a document spells it with: its wire (Go) name. The Python name
    that pydantic would also take is refused too: ``allocation`` beside ``Allocation`` is
    a typo, and which one won would be pydantic's choice, not the user's."""
    return {name: model.model_fields[field] for field, name in _wire_names(model).items()}


def _wire_names(model: type[pydantic.BaseModel]) -> dict[str, str]:
    """The wire name of each field, by field."""
    names = {}
    for field, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        names[field] = alias or field
    return names


def _nested(annotation: Any, value: Any, *, path: str) -> list[Problem]:
    model = _model_in(annotation)
    if model is not None:
        return unknown_fields(model, value, root=path)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args and isinstance(value, list):
        return [problem for index, item in enumerate(value)
                for problem in _nested(args[0], item, path=join(path, [index]))]
    if origin is dict and len(args) == 2 and isinstance(value, Mapping):
        return [problem for key, item in value.items()
                for problem in _nested(args[1], item, path=join(path, [str(key)]))]
    if origin is typing.Annotated and args:
        return _nested(args[0], value, path=path)
    if _is_union(origin):
        shaped = [arg for arg in args if typing.get_origin(arg) in (list, dict)]
        if len(shaped) == 1 and isinstance(value, list | Mapping):
            return _nested(shaped[0], value, path=path)
    return []


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The one model ``annotation`` names (``M``, ``M | None``, ``M | str``), if exactly one."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    if _is_union(typing.get_origin(annotation)):
        models = [arg for arg in typing.get_args(annotation)
                  if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel)]
        return models[0] if len(models) == 1 else None
    return None


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or origin is types.UnionType


def _phrase(item: Any) -> str:
    phrase = _PHRASES.get(item["type"])
    if phrase is not None:
        return phrase
    context = item.get("ctx") or {}
    if item["type"] in ("enum", "literal_error"):
        return f"expected {context.get('expected')}, got {item.get('input')!r}"
    if item["type"] == "greater_than_equal":
        return f"expected {context.get('ge')} or more, got {item.get('input')!r}"
    if item["type"] == "string_too_short":
        least = context.get("min_length")
        return "expected a non-empty string" if least == 1 else \
            f"expected at least {least} characters, got {item.get('input')!r}"
    if item["type"] == "greater_than":
        return f"expected more than {context.get('gt')}, got {item.get('input')!r}"
    # Our own validators raise ValueError; pydantic prefixes their text.
    return str(item["msg"]).removeprefix("Value error, ")
