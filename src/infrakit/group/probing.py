"""Probing members' health: who is due a Flavor.Healthy call now, and asking them.

At each reconcile the supervisor asks :func:`due` which members to probe (those whose
``Health.Interval`` has passed, and the new members a rolling update's health gate waits
on), then :func:`probe` asks the flavor of each and notes the verdict, with what the probe
said (:func:`infrakit.group.actions.judge`), in the group's health book.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from infrakit.group import actions, clock, decide, health, jobs, rolling, tags
from infrakit.group.target import Target
from infrakit.spi import flavor, instance

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0
"""A Flavor.Healthy call that takes longer counts as Unknown."""


def due(target: Target, view: decide.View, *, update: rolling.UpdateState | None,
        book: health.Book, now: float) -> list[instance.Description]:
    """The members to probe now: due by the interval, or on the target config and not yet
    through an update's health gate; none that is not listed yet."""
    interval = target.props.health.interval
    gate = update is not None and update.target == target.sha and not update.aborted
    if not gate and interval <= 0:
        return []
    done = set(update.done) if gate and update is not None else set()
    return [m for m in view.members.values() if m.id not in view.unobserved and (
        (gate and m.id not in done and tags.is_current(m, target.sha))
        or (interval > 0 and book.due(m.id, now, interval)))]


async def probe(members: Sequence[instance.Description], *, target: Target,
                plugins: actions.Plugins, book: health.Book, source: clock.Clock, now: float,
                workers: int, on_error: jobs.OnError) -> None:
    """Ask Flavor.Healthy of each member (at most ``workers`` at once) and note the answer
    in ``book``; a call that fails or outlives :data:`PROBE_TIMEOUT` is Unknown."""
    if not members:
        return
    plugin = plugins.flavor(target.props.flavor.plugin)
    props = target.props.flavor.properties

    async def one(member: instance.Description) -> None:
        try:
            verdict = await clock.within(source, PROBE_TIMEOUT,
                                         actions.judge(plugin, props, member))
        except Exception as err:  # a failed probe says nothing: Unknown
            log.debug("group %s: probe of %s failed: %s", target.gid, member.id, err)
            verdict = flavor.Verdict(reason=f"Flavor.Healthy failed: {err}")
        book.record(member.id, flavor.Health(verdict.health), now, reason=verdict.reason)

    await jobs.bounded([functools.partial(one, m) for m in members], workers=workers,
                       on_error=on_error)
