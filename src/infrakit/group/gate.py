"""Asking the flavor before a voluntary destroy, and in which order to replace members.

A flavor that knows its application (:class:`infrakit.spi.flavor.Gatekeeper`) may say "not
now" to a removal (ZooKeeper: "replacing zk-2 would leave 1 of 3 voting members") and give
the order in which members should be replaced (the leader last). The supervisor asks
:func:`ask` right before each scale-in, rolling-update, unhealthy or duplicate removal, and
:func:`order` before deciding a rolling update's next step. An answer it cannot get (the
plugin is down, timed out, failed) is "not now": a member is never destroyed on an unknown
answer. A flavor without these methods (v0.5's, or ours without them) allows everything in
any order. Removals the user asked for (DestroyInstances, DestroyGroup) are not asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infrakit import errors
from infrakit.group import actions, clock, config
from infrakit.rpc import flavor as flavor_rpc
from infrakit.spi import flavor, instance

TIMEOUT = 30.0
"""Seconds a CanRemove or Order answer may take; past it the answer is "not now"."""

ALLOWED = flavor.Removal(allowed=True)


@dataclass(frozen=True, slots=True)
class Answer:
    """What :func:`ask` found."""

    removal: flavor.Removal
    error: str = ""
    """Why the flavor gave no answer (an error, no answer in time; ``""``: it answered):
    ``removal`` is then the refusal :func:`unanswered` gives."""


@dataclass(frozen=True, slots=True)
class Ordered:
    """Flavor.Order's answer: the IDs in replacement order, or why it could not be had."""

    ids: tuple[str, ...] = ()
    error: str = ""
    """Why the order is unknown (``""``: known); a rolling update then replaces no one."""


async def ask(plugins: actions.Plugins, props: config.Properties,
              member: instance.Description, members: list[instance.Description], *,
              source: clock.Clock, timeout: float = TIMEOUT) -> Answer:
    """May ``member`` go now? ``members``: the group now (``member`` among them)."""
    name = props.flavor.plugin
    try:
        asking = getattr(plugins.flavor(name), "can_remove", None)
        if asking is None:
            return Answer(ALLOWED)
        work = asking(props.flavor.properties, member, members)
        answer = await clock.within(source, timeout, work)
    except Exception as err:  # any failure is "not now": never destroy on an unknown answer
        if isinstance(err, errors.InfrakitError) and flavor_rpc.unknown_method(err):
            return Answer(ALLOWED)
        said = str(err) or type(err).__name__
        return Answer(unanswered(props, member, said), error=said)
    return Answer(_removal(answer, member=member, name=name))


def unanswered(props: config.Properties, member: instance.Description,
               error: str) -> flavor.Removal:
    """The refusal that stands for an answer the flavor did not give."""
    return flavor.Removal(allowed=False, reason=(
        f"could not ask {props.flavor.plugin} whether {member.id} may go ({error}); "
        "not removed"))


def _removal(answer: Any, *, member: instance.Description, name: str) -> flavor.Removal:
    if isinstance(answer, bool):
        answer = flavor.Removal(allowed=answer)
    if not isinstance(answer, flavor.Removal):
        return flavor.Removal(allowed=False, reason=(
            f"{name} answered CanRemove for {member.id} with {type(answer).__name__}, not a "
            "Removal; not removed"))
    if answer.allowed or answer.reason:
        return answer
    return flavor.Removal(allowed=False, reason=f"{name} says {member.id} may not go now")


async def order(plugins: actions.Plugins, props: config.Properties,
                members: list[instance.Description], *, source: clock.Clock,
                timeout: float = TIMEOUT) -> Ordered:
    """The replacement order the group's flavor gives ``members`` (empty: any order)."""
    name = props.flavor.plugin
    try:
        ordering = getattr(plugins.flavor(name), "order", None)
        if ordering is None:
            return Ordered()
        ids = await clock.within(source, timeout, ordering(props.flavor.properties, members))
    except Exception as err:  # unknown order: replace no one rather than the leader first
        if isinstance(err, errors.InfrakitError) and flavor_rpc.unknown_method(err):
            return Ordered()
        said = str(err) or type(err).__name__
        return Ordered(error=f"could not ask {name} for the replacement order ({said})")
    if not isinstance(ids, list | tuple):
        return Ordered(error=f"{name} answered Order with {type(ids).__name__}, not a list")
    return Ordered(ids=tuple(str(each) for each in ids))


def ordered(members: Iterable[instance.Description],
            ids: Sequence[str]) -> list[instance.Description]:
    """``members`` in replacement order: those ``ids`` leaves out first, as they came; then
    those it names, as it names them (the leader last)."""
    rank = {iid: index for index, iid in enumerate(dict.fromkeys(ids))}
    unnamed = [m for m in members if m.id not in rank]
    named = sorted((m for m in members if m.id in rank), key=lambda m: rank[m.id])
    return unnamed + named


def explain(waiting: Mapping[str, str], *, named: int = 3) -> str:
    """``waiting: <reason>`` for the members held back (at most ``named`` reasons)."""
    reasons = list(dict.fromkeys(waiting[iid] for iid in sorted(waiting)))
    text = "; ".join(reasons[:named])
    if len(reasons) > named:
        text += f" and {len(reasons) - named} more"
    return f"waiting: {text}"
