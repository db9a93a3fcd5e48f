"""Turning wire params into calls on an implementation object, and back.

Interface modules (``rpc.instance``, ``rpc.flavor`` …) build their server-side method
tables with these helpers; ``rpc.server`` runs the tables.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import pydantic

from infrakit import errors
from infrakit.rpc import jsonrpc
from infrakit.spi import handshake
from infrakit.spi.wire import Wire

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
"""A server-side method: wire params in, wire result out."""

Methods = dict[str, Handler]

W = TypeVar("W", bound=Wire)


async def invoke(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call an implementation method that may be sync (run in a thread) or async.

    An implementation may choose how its sync methods run by defining
    ``async def run_sync(self, work, /, *args)`` (``instance-file`` runs them on the loop
    while its directory answers fast: a thread hop costs more than its writes).
    """
    if inspect.iscoroutinefunction(function):
        return await function(*args, **kwargs)
    runner = getattr(getattr(function, "__self__", None), "run_sync", None)
    if runner is not None and not kwargs:
        value = await runner(function, *args)
    else:
        value = await asyncio.to_thread(function, *args, **kwargs)
    if inspect.isawaitable(value):
        value = await value
    return value


def parse(model: type[W], params: dict[str, Any], *, method: str) -> W:
    """Parse params into ``model`` or raise ``InvalidError`` naming every bad field."""
    try:
        return model.from_wire(params)
    except pydantic.ValidationError as exc:
        raise errors.InvalidError(
            jsonrpc.describe_validation(exc, where=f"invalid params for {method}")
        ) from None


def pick(objects: Mapping[str, Any], type_name: str, *, interface: handshake.Interface) -> Any:
    """The object serving ``type_name`` (``""`` is the default object)."""
    try:
        return objects[type_name]
    except KeyError:
        served = ", ".join(repr(name) for name in sorted(objects)) or "none"
        raise errors.NotFoundError(
            f"no {interface.name} object of type {type_name!r} here (served: {served})",
            type=type_name,
        ) from None


def as_typed(served: Any) -> dict[str, Any]:
    """Normalise one object or ``{type: object}`` to the mapping form."""
    if isinstance(served, Mapping):
        return dict(served)
    return {"": served}


def types_entry(objects: Mapping[str, Any]) -> list[str]:
    """``Handshake.Types`` names: ``"."`` for the default object, then the sub-types."""
    return [handshake.DEFAULT_TYPE if name == "" else name for name in objects]
