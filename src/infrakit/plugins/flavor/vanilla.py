"""The ``flavor-vanilla`` plugin: add init lines, tags and attachments; optionally probe health.

Served by ``infrakit-flavor-vanilla --name N`` (see :func:`run`); the group controller calls
it to prepare each new instance and to judge the health of each member. Properties::

    {"Init": ["line", ...], "Tags": {"k": "v"}, "Attachments": [{"ID": "...", "Type": "..."}],
     "Health": {...}}                        (optional; see infrakit.plugins.flavor.health)

Prepare, as the original: Init is the spec's init (when not empty) followed by the flavor's
lines, joined by newlines; the flavor's tags are merged over the spec's (the flavor wins);
its attachments are appended. Beyond the original, an Init line or tag value containing
``{{`` or ``{%`` is a Jinja2 template rendered with ``spec`` (the incoming spec; for Init
lines, with this flavor's tags already merged in), ``index`` (``{Group, Sequence}``) and
``allocation``: that is how each member of a group of local web processes gets its own port
(``Tags: {"port": "{{ 8000 + index.Sequence }}"}``, ``Init: ["serve {{ spec.Tags.port }}"]``).
Healthy is HEALTHY without a ``Health`` probe, else the probe's verdict, with (ext) the
probe's words as its ``Reason`` (``judge``). Drain does nothing.
"""

from __future__ import annotations

from typing import Any

from infrakit import errors, template
from infrakit.plugins import launch, properties
from infrakit.plugins.flavor import health
from infrakit.spi import flavor, instance
from infrakit.spi.wire import Wire

_TEMPLATE_MARKS = ("{{", "{%", "{##")

_Probe = health.Probe  # the field named ``health`` below hides the module inside the class


class Properties(Wire):
    """What the vanilla flavor adds to an instance."""

    init: list[str] | None = None
    """Lines appended to the init script."""
    tags: dict[str, str] | None = None
    """Tags merged over the spec's."""
    attachments: list[instance.Attachment] | None = None
    """Attachments appended to the spec's."""
    health: _Probe | None = None
    """How to judge an instance; healthy when unset."""


class Plugin:
    """The vanilla flavor (stateless; every method is a coroutine)."""

    async def validate(self, properties: Any, allocation: flavor.AllocationMethod) -> None:
        _parse(properties)

    async def prepare(
        self, properties: Any, spec: instance.Spec, allocation: flavor.AllocationMethod,
        index: flavor.Index,
    ) -> instance.Spec:
        wanted = _parse(properties)
        context = {"spec": spec.to_wire(), "index": index.to_wire(),
                   "allocation": allocation.to_wire()}
        tags = dict(spec.tags)
        tags.update({key: _render(value, context, field=f"Properties.Tags.{key}")
                     for key, value in (wanted.tags or {}).items()})
        # Init lines see the tags just merged: "serve --port {{ spec.Tags.port }}".
        context["spec"] = {**context["spec"], "Tags": tags}
        lines = [spec.init] if spec.init else []
        lines += [_render(line, context, field=f"Properties.Init[{number}]")
                  for number, line in enumerate(wanted.init or [])]
        attachments = spec.attachments
        if wanted.attachments:
            attachments = [*(attachments or []), *wanted.attachments]
        return spec.model_copy(
            update={"init": "\n".join(lines), "tags": tags, "attachments": attachments}
        )

    async def healthy(self, properties: Any, inst: instance.Description) -> flavor.Health:
        return (await self.judge(properties, inst)).health

    async def judge(self, properties: Any, inst: instance.Description) -> flavor.Verdict:
        """Healthy, with what the probe said (ext: Flavor.Healthy's ``Reason``)."""
        probe = _parse(properties).health
        if probe is None:
            return flavor.Verdict(health=flavor.Health.HEALTHY)
        return await health.judge(probe, inst)

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        """Nothing to move away from a vanilla instance."""


def _parse(raw: Any) -> Properties:
    return properties.parse(Properties, raw)


def _render(text: str, context: dict[str, Any], *, field: str) -> str:
    if not any(mark in text for mark in _TEMPLATE_MARKS):
        return text  # the common case, and plain shell text stays exactly as written
    try:
        return template.render(text, source=field, variables=context)
    except errors.UsageError as exc:
        raise errors.InvalidError(exc.message, field=field) from None


def run(argv: list[str] | None = None) -> None:
    """``infrakit-flavor-vanilla [--name flavor-vanilla] [--log 0-5]``."""
    args = launch.parse(argv, prog="infrakit-flavor-vanilla",
                        description="Vanilla flavor plugin", default_name="flavor-vanilla")

    # Imported here: in-process users of the plugin do not need the server.
    from infrakit.rpc import server

    server.run(args.name, flavor=Plugin())
