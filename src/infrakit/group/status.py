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
from infrakit.spi.wire import Wire, omit_if_none

log = logging.getLogger(__name__)

KEEP = 100
"""Actions kept per group."""
LIST_MEMBERS = 1000
"""The most members a status lists one by one (its counts cover every member)."""


class Phase(enum.StrEnum):
    """Where a group stands."""

    CONVERGING = "Converging"
    """Adding or removing members to match the spec."""
    CONVERGED = "Converged"
    """Every member exists, matches the spec and is Healthy (or is not probed); nothing in
    flight."""
    UPDATING = "Updating"
    """A rolling update is replacing members."""
    PAUSED = "Paused"
    """A rolling update is paused (by ``pause`` or a member that missed HealthTimeout)."""
    ABORTED = "Aborted"
    """A rolling update was aborted; members keep their configs until the next commit."""
    UNHEALTHY = "Unhealthy"
    """Members are Unhealthy; they are replaced once Unhealthy for ``UnhealthyAfter``."""
    CRASH_LOOPING = "CrashLooping"
    """Members keep dying young; their slots wait (backing off) before being re-created."""
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
    ``died-young``, ``crash-loop``, ``recovered``, ``waiting`` (the flavor said not now),
    ``error``."""
    message: str
    """The sentence, with its reason."""
    instance: str | None = None
    """The member concerned, if one."""
    repeated: int = 1
    """How many times in a row this same message was recorded."""


class Counts(Wire):
    """(ext) How many members are where; ``healthy + unhealthy + unknown == existing``."""

    expected: int = 0
    """The declared number of members."""
    existing: int = 0
    """Members there now (created but not yet listed ones included; those being removed not)."""
    creating: int = 0
    """Creations in flight."""
    removing: int = 0
    """Removals in flight (not counted in ``existing``)."""
    current: int = 0
    """Existing members on the committed config."""
    healthy: int = 0
    """Existing members whose last probe said Healthy."""
    unhealthy: int = 0
    """Existing members whose last probe said Unhealthy."""
    unknown: int = 0
    """Existing members not probed yet, or whose probe failed (all of them when unprobed)."""
    probed: bool = False
    """True when the group's members are probed (a ``Health`` section, or an update's gate)."""


class Member(Wire):
    """(ext) One member as the controller sees it."""

    id: str = ""
    """Its instance ID (``""`` while it is being created)."""
    logical_id: str | None = None
    """Its logical ID (pets)."""
    state: str = "running"
    """``creating``, ``running`` or ``removing``."""
    health: str = ""
    """``Healthy``, ``Unhealthy``, ``Unknown``, or ``""`` when not probed."""
    created: float | None = None
    """When it was created or first listed (seconds since the epoch)."""
    config: str = ""
    """Its config hash, short."""
    version: str | None = None
    """The spec version of its config, when a manager supplied one."""
    transition: str = ""
    """Its last transition: ``created``, ``listed``, ``became Healthy``, ..."""
    since: float | None = None
    """When that transition happened (seconds since the epoch)."""
    waiting: str | None = omit_if_none()
    """(ext) Why its removal waits: its flavor said not now (Flavor.CanRemove), e.g.
    ``replacing zk-2 would leave 1 of 3 voting members``; left out when it does not wait."""


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
    """Members now, creations in flight included (``counts`` breaks it down)."""
    converged: bool = False
    """As in DescribeGroup."""
    config_sha: str = ""
    """The hash members of the current spec carry."""
    update: rolling.UpdateState | None = None
    """The rolling update in flight."""
    provision_failures: int = 0
    """Provisions failed in a row."""
    crash_looping: list[str] = Field(default_factory=list)
    """Slots in a crash loop: logical IDs, or ``*`` for a scaled group."""
    counts: Counts = Field(default_factory=Counts)
    """How many members are where."""
    instances: list[Member] = Field(default_factory=list)
    """Each member (at most ``LIST_MEMBERS``; see ``more_instances``), then those being
    created."""
    more_instances: int = 0
    """Members left out of ``instances`` (a huge group)."""
    actions: list[Action] = Field(default_factory=list)
    """Recent actions, oldest first."""
    waiting: dict[str, str] | None = omit_if_none()
    """(ext) Members the group wants to remove (scale-in, rolling update, unhealthy,
    duplicate) but whose flavor said not now (Flavor.CanRemove), each with the reason; they
    are asked again at every reconcile. Left out when none waits."""


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
