"""The rolling update: its persistable state and its next step, pure.

An update replaces the members whose config hash differs from the target, a few at a
time: at most ``MaxSurge`` members above the group's size, and never fewer than
``size - MaxUnavailable`` members available, where a new member counts as available only
once Flavor.Healthy said so (the health gate). The defaults (surge 0, unavailable 1)
reproduce the original: destroy one, wait for its replacement to be healthy, repeat.

:class:`UpdateState` is what a new leader needs to continue an update where it stopped;
the controller hands it to its ``on_state`` callback and accepts it back at commit. It also
carries the group's crash-loop counts (:mod:`.crashloop`), so that neither a restart nor a
failover resets a crash loop's backoff, and the spec versions of the config hashes
(``v1 → v2`` in reasons); with no update in flight it is ``Idle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import Field

from infrakit.group import config, crashloop
from infrakit.spi import instance
from infrakit.spi.wire import Wire


class UpdateState(Wire):
    """(ext) An in-flight rolling update, serializable so that a new leader continues it."""

    target: str
    """The config hash the group is rolling to."""
    done: list[str] = Field(default_factory=list)
    """Members on the target config that Flavor.Healthy confirmed (the health gate)."""
    paused: bool = False
    """No old member is replaced while true (``pause``, or a member missed HealthTimeout)."""
    aborted: bool = False
    """The update was given up (``abort``); members keep their config until a new commit."""
    reason: str = ""
    """Why it is paused or aborted."""
    hold_size: int | None = None
    """When a commit grows the group and changes its config: the size held while rolling
    (the original rolls first, then adds)."""
    idle: bool = False
    """True when no update is in flight: the state only carries ``crashes``."""
    crashes: crashloop.Ledger | None = None
    """The group's crash-loop counts (``None``: none)."""
    versions: dict[str, str] | None = None
    """The spec versions of the config hashes, as far as a manager said them (``None``:
    none), so that reasons still name old members' versions after a restart."""

    @property
    def active(self) -> bool:
        """True while old members are being replaced (not paused, not aborted)."""
        return not self.idle and not self.paused and not self.aborted


@dataclass(frozen=True, slots=True)
class Pace:
    """The resolved MaxSurge and MaxUnavailable of one group size."""

    surge: int
    unavailable: int


def pace(policy: config.UpdatePolicy, size: int) -> Pace:
    """Resolve the policy for ``size`` members (surge rounds up, unavailable down).

    When both come out 0 the update could never move, so one member may be unavailable.
    """
    surge = config.resolve(policy.max_surge, size, round_up=True)
    unavailable = config.resolve(policy.max_unavailable, size, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return Pace(surge=surge, unavailable=unavailable)


@dataclass(frozen=True, slots=True)
class Step:
    """What the update does this round."""

    creates: int = 0
    """New members to add (on the target config)."""
    destroy: list[instance.Description] = field(default_factory=list)
    """Old members to replace now."""


def step(*, size: int, pace: Pace, old: Sequence[instance.Description], keepers: int,
         total: int, available: int, paused: bool) -> Step:
    """The next step of an update.

    ``old``: the members still to replace, in removal order; ``keepers``: members that stay
    (target config, in flight, or protected); ``total``: every member plus those in flight;
    ``available``: old members plus target members that passed the health gate.
    A paused update only keeps the group at its size; it destroys nothing.
    """
    surge = 0 if paused else pace.surge
    creates = max(0, min(size + surge - total, size - keepers))
    if paused:
        return Step(creates=creates)
    floor = max(0, size - pace.unavailable)
    count = max(0, min(len(old), available - floor))
    return Step(creates=creates, destroy=list(old[:count]))
