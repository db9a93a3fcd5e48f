"""A group's status as the controller reports it, and the ring of its recent actions.

``Status`` is what ``infrakit group describe`` renders and ``--output json`` prints; it
also travels in ``group.Description.Status`` (ext). Every action the controller takes
(or refuses to take) is recorded with its reason: "created instance-x because count
4 < 5", "holding because 3/5 unhealthy exceeds budget 40%".
"""

from __future__ import annotations

import collections
import enum
import logging

from pydantic import Field

from infrakit.group import clock, rolling
from infrakit.spi import group
from infrakit.spi.wire import Wire

log = logging.getLogger(__name__)

KEEP = 100
"""Actions kept per group."""


class Phase(enum.StrEnum):
    """Where a group stands."""

    CONVERGING = "Converging"
    """Adding or removing members to match the spec."""
    CONVERGED = "Converged"
    """The members match the spec; nothing in flight."""
    UPDATING = "Updating"
    """A rolling update is replacing members."""
    PAUSED = "Paused"
    """A rolling update is paused (by ``pause`` or a member that missed HealthTimeout)."""
    ABORTED = "Aborted"
    """A rolling update was aborted; members keep their configs until the next commit."""
    HOLDING = "Holding"
    """The controller refuses to act: remediation budget exceeded, protected members."""
    PROVISION_FAILING = "ProvisionFailing"
    """Provisions keep failing; retrying at the capped rate only."""
    DESTROYING = "Destroying"
    """DestroyGroup is removing every member."""


class Action(Wire):
    """One thing the controller did or refused to do, and why."""

    time: float
    """When (seconds since the epoch)."""
    kind: str
    """``created``, ``destroyed``, ``replaced``, ``adopted``, ``holding``, ``paused``,
    ``resumed``, ``aborted``, ``provision-failed``, ``drain-failed``, ``destroy-failed``,
    ``error``."""
    message: str
    """The sentence, with its reason."""
    instance: str | None = None
    """The member concerned, if one."""
    repeated: int = 1
    """How many times in a row this same message was recorded."""


class Status(Wire):
    """(ext) A group's status, its rolling update and its recent actions."""

    id: group.ID
    """The group."""
    phase: Phase
    """Where it stands."""
    reason: str = ""
    """Why it is in that phase."""
    size: int = 0
    """The declared number of members."""
    members: int = 0
    """Members at the last reconcile (created but not yet listed ones included)."""
    converged: bool = False
    """As in DescribeGroup."""
    config_sha: str = ""
    """The hash members of the current spec carry."""
    update: rolling.UpdateState | None = None
    """The rolling update in flight."""
    provision_failures: int = 0
    """Provisions failed in a row."""
    actions: list[Action] = Field(default_factory=list)
    """Recent actions, oldest first."""


class Recorder:
    """The ring of a group's recent actions; also logs each one."""

    def __init__(self, gid: str, source: clock.Clock, *, keep: int = KEEP) -> None:
        self.gid = gid
        self.clock = source
        self._ring: collections.deque[Action] = collections.deque(maxlen=keep)

    def add(self, kind: str, message: str, *, instance: str | None = None) -> None:
        """Record an action; the same message twice in a row is counted, not repeated."""
        last = self._ring[-1] if self._ring else None
        if last is not None and last.message == message and last.kind == kind:
            self._ring[-1] = last.model_copy(update={"time": self.clock.time(),
                                                     "repeated": last.repeated + 1})
            return
        log.info("group %s: %s", self.gid, message)
        self._ring.append(Action(time=self.clock.time(), kind=kind, message=message,
                                 instance=instance))

    def recent(self) -> list[Action]:
        """The actions kept, oldest first."""
        return list(self._ring)
