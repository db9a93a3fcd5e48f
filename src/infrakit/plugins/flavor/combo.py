"""The ``flavor-combo`` plugin: several flavors applied to one instance, in order.

Served by ``infrakit-flavor-combo --name N`` (see :func:`run`), which reaches the flavors it
combines over RPC; tests give :class:`Plugin` a resolver returning local flavor objects.
Properties: ``{"Flavors": [{"Plugin": "flavor-vanilla", "Properties": {...}}, ...]}``.

- Validate validates each flavor; an error names its index (``Properties.Flavors[1]``).
- Prepare calls each flavor in order with the spec so far, minus its Init and Attachments, so
  each one contributes only its own: tags are merged (the last flavor wins), Init scripts are
  joined by newlines (the incoming spec's first), attachments appended.
- Healthy asks the flavors in order and returns the first answer that is not HEALTHY, with
  (ext, ``judge``) that flavor's reason as it said it; when every flavor is HEALTHY, the
  reasons of all that gave one, joined by ``; ``. A flavor without ``judge`` (a fake, a
  v0.5 peer) is asked ``healthy`` and gives no reason.
- Drain drains with every flavor in reverse order (the last one applied is undone first), tries
  them all even when one fails, then raises the failures.
- (ext) CanRemove allows a removal only if every flavor allows it: the flavors are asked in
  order and the first refusal, with its reason, is the answer. Order is the first non-empty
  order a flavor gives. A flavor without these methods allows anything in any order; an
  error is raised naming the flavor (the group then waits: it never destroys on an error).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pydantic

from infrakit import errors
from infrakit.plugins import launch, properties
from infrakit.spi import flavor, instance, plugin
from infrakit.spi.wire import Wire

Resolver = Callable[[str], flavor.Plugin]
"""A flavor plugin by name (``flavor-vanilla``, ``flavor-x/type``)."""


class Properties(Wire):
    """The flavors to combine, in order."""

    flavors: list[plugin.Spec] = pydantic.Field(default_factory=list)
    """Each flavor's plugin name and properties."""


class Plugin:
    """The combo flavor over the flavors ``resolve`` finds (sync or async implementations)."""

    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        for number, part in enumerate(_parse(properties).flavors):
            await _call(self._resolve, part, "validate", part.properties, allocation,
                        where=number)

    async def prepare(
        self, properties: Any, spec: instance.Spec, allocation: flavor.AllocationMethod,
        index: flavor.Index,
    ) -> instance.Spec:
        result = spec
        for number, part in enumerate(_parse(properties).flavors):
            blank = result.model_copy(update={"init": "", "attachments": None})
            added: instance.Spec = await _call(
                self._resolve, part, "prepare", part.properties, blank, allocation, index,
                where=number,
            )
            result = _merge(result, added)
        return result

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Healthy, with the reason of the flavor that decided (ext: Flavor.Healthy's
        ``Reason``); the RPC server and the group call it when present."""
        reasons: list[str] = []
        for number, part in enumerate(_parse(properties).flavors):
            answer = await _call(self._resolve, part, "judge", part.properties, inst,
                                 where=number, instead="healthy")
            verdict = _verdict(answer)
            if verdict.health != flavor.Health.HEALTHY:
                return verdict
            if verdict.reason:
                reasons.append(verdict.reason)
        return flavor.Verdict(health=flavor.Health.HEALTHY, reason="; ".join(reasons))

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> flavor.Removal:
        """(ext) Allowed when every flavor allows; else the first refusal."""
        for number, part in enumerate(_parse(properties).flavors):
            answer = await _call(self._resolve, part, "can_remove", part.properties, inst,
                                 members, where=number, absent=ALLOWED)
            removal = _removal(answer, part=part, where=number)
            if not removal.allowed:
                return removal
        return ALLOWED

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        """(ext) The first non-empty replacement order a flavor gives (``[]``: none does)."""
        for number, part in enumerate(_parse(properties).flavors):
            ids = await _call(self._resolve, part, "order", part.properties, members,
                              where=number, absent=[])
            if ids:
                return [instance.ID(str(each)) for each in ids]
        return []

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        failures: list[errors.InfrakitError] = []
        parts = list(enumerate(_parse(properties).flavors))
        for number, part in reversed(parts):
            try:
                await _call(self._resolve, part, "drain", part.properties, inst, where=number)
            except errors.InfrakitError as exc:
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            first = failures[0]
            message = "; ".join(failure.message for failure in failures)
            raise type(first)(message, **first.data)


def _parse(raw: Any) -> Properties:
    return properties.parse(Properties, raw)


ALLOWED = flavor.Removal(allowed=True)
_REQUIRED: Any = object()


def _removal(answer: Any, *, part: plugin.Spec, where: int) -> flavor.Removal:
    """A flavor's CanRemove answer (a bare bool is accepted too)."""
    if isinstance(answer, bool):
        return flavor.Removal(allowed=answer)
    if not isinstance(answer, flavor.Removal):
        raise errors.PermanentError(
            f"Properties.Flavors[{where}] ({part.plugin}): can_remove returned "
            f"{type(answer).__name__}; expected a flavor.Removal")
    return answer


def _verdict(answer: Any) -> flavor.Verdict:
    """A flavor's ``judge`` verdict as it is, or its ``healthy`` answer without a reason."""
    if isinstance(answer, flavor.Verdict):
        return flavor.Verdict(health=_health(answer.health), reason=answer.reason)
    return flavor.Verdict(health=_health(answer))


def _health(answer: Any) -> flavor.Health:
    try:
        return flavor.Health(answer)
    except ValueError:
        return flavor.Health.UNKNOWN  # a verdict we do not know is no verdict


def _merge(spec: instance.Spec, added: instance.Spec) -> instance.Spec:
    """One flavor's output over ``spec``: its tags win, its init and attachments follow."""
    lines = [text for text in (spec.init, added.init) if text]
    attachments = spec.attachments
    if added.attachments:
        attachments = [*(attachments or []), *added.attachments]
    return added.model_copy(update={
        "init": "\n".join(lines), "tags": {**spec.tags, **added.tags}, "attachments": attachments,
    })


async def _call(resolve: Resolver, part: plugin.Spec, method: str, *args: Any, where: int,
                instead: str | None = None, absent: Any = _REQUIRED) -> Any:
    """``method`` of the flavor ``part`` names (``instead`` when the flavor lacks that
    optional method, or ``absent`` is the answer); errors are re-raised naming the flavor."""
    prefix = f"Properties.Flavors[{where}] ({part.plugin})"
    try:
        found = resolve(part.plugin)
        if not hasattr(found, method):
            if instead is not None:
                method = instead
            elif absent is not _REQUIRED:
                return absent
        target = getattr(found, method)
        if inspect.iscoroutinefunction(target):
            return await target(*args)
        result = await asyncio.to_thread(target, *args)  # a sync plugin must not block the loop
        return await result if inspect.isawaitable(result) else result
    except errors.InfrakitError as exc:
        raise type(exc)(f"{prefix}: {exc.message}", **exc.data) from exc
    except Exception as exc:
        raise errors.PermanentError(f"{prefix}: {type(exc).__name__}: {exc}") from exc


def run(argv: list[str] | None = None) -> None:
    """``infrakit-flavor-combo [--name flavor-combo] [--log 0-5]``."""
    args = launch.parse(argv, prog="infrakit-flavor-combo", description="Combo flavor plugin",
                        default_name="flavor-combo")

    # Imported here: in-process users of the plugin do not need the server.
    from infrakit.rpc import discovery, server

    server.run(args.name, flavor=Plugin(discovery.Plugins().flavor))
