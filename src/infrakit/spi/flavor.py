"""The Flavor interface (v0.1.0): what runs on an instance, its health, its drain."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import Field

from infrakit.spi import instance
from infrakit.spi.handshake import Interface
from infrakit.spi.wire import Wire, omit_if_none

INTERFACE = Interface(name="Flavor", version="0.1.0")


class Health(enum.IntEnum):
    """A flavor's verdict on one instance. ``UNKNOWN`` is never a reason to destroy."""

    UNKNOWN = 0
    HEALTHY = 1
    UNHEALTHY = 2


class AllocationMethod(Wire):
    """How a group is sized: a count (cattle) or a list of logical IDs (pets)."""

    size: int = Field(0, ge=0)
    """How many instances, for cattle."""
    logical_ids: list[instance.LogicalID] | None = None
    """One instance per logical ID, for pets."""


class Index(Wire):
    """Which provision this is: the group and a sequence number unique within it."""

    group: str = ""
    """The group's ID."""
    sequence: int = Field(0, ge=0)
    """Increments with every instance the group creates."""


class Plugin(Protocol):
    """What every flavor plugin implements (methods may be sync or async)."""

    async def validate(self, properties: Any, allocation: AllocationMethod) -> None:
        """Raise ``InvalidError`` naming the field when ``properties`` are unusable."""

    async def prepare(
        self, properties: Any, spec: instance.Spec, allocation: AllocationMethod, index: Index
    ) -> instance.Spec:
        """Add this flavor's init, tags and attachments to ``spec``."""

    async def healthy(self, properties: Any, inst: instance.Description) -> Health:
        """Judge one instance in an application-aware way."""

    async def drain(self, properties: Any, inst: instance.Description) -> None:
        """Make the instance ready to go (move work away) before it is destroyed."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """(ext) A Healthy answer with what the probe said: what the optional ``judge`` method
    of a flavor returns (see :class:`Judge`); the group shows the reason."""

    health: Health = Health.UNKNOWN
    """The verdict."""
    reason: str = ""
    """What the probe said, e.g. ``GET http://127.0.0.1:8080/health: 500 Internal Server
    Error``; ``""`` when it said nothing."""


class Judge(Protocol):
    """(ext) A flavor that can say why: the optional method beside ``healthy``."""

    async def judge(self, properties: Any, inst: instance.Description) -> Verdict:
        """Flavor.Healthy's verdict on one instance, with the probe's reason."""


@dataclass(frozen=True, slots=True)
class Removal:
    """(ext) A flavor's answer to "may this member be removed or replaced now?"."""

    allowed: bool = True
    """Whether the group may destroy the member now."""
    reason: str = ""
    """Why not, in the application's words, e.g. ``replacing zk-2 would leave 1 of 3 voting
    members``; ``""`` when allowed."""


class Gatekeeper(Protocol):
    """(ext) A flavor that knows its application well enough to say "not now" and "the leader
    last": the optional methods beside ``healthy``. The group asks ``can_remove`` before every
    voluntary destroy (scale-in, rolling update, unhealthy replacement) and replaces members in
    ``order``. Members that are already gone are replaced without asking. Over RPC these are
    ``Flavor.CanRemove`` and ``Flavor.Order``; a v0.5 flavor answers neither (method not found),
    which reads as "allowed" and "any order"."""

    async def can_remove(self, properties: Any, inst: instance.Description,
                         members: list[instance.Description]) -> Removal:
        """Whether ``inst`` may go now, given all the group's ``members`` (``inst`` among them)."""

    async def order(self, properties: Any,
                    members: list[instance.Description]) -> list[instance.ID]:
        """The IDs of ``members`` in the order they should be replaced (the leader last).
        Members left out are replaced first, in the group's own order."""


class ValidateRequest(Wire):
    type: str = ""
    """The sub-object addressed."""
    properties: Any = None
    """The flavor's properties."""
    allocation: AllocationMethod = Field(default_factory=AllocationMethod)
    """The group's allocation."""


class PrepareRequest(Wire):
    type: str = ""
    """The sub-object addressed."""
    properties: Any = None
    """The flavor's properties."""
    spec: instance.Spec
    """The spec to add to."""
    allocation: AllocationMethod = Field(default_factory=AllocationMethod)
    """The group's allocation."""
    index: Index = Field(default_factory=Index)
    """Which provision this is."""


class PrepareResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    spec: instance.Spec
    """The prepared spec."""


class InstanceRequest(Wire):
    """Params of Healthy and Drain."""

    type: str = ""
    """The sub-object addressed."""
    properties: Any = None
    """The flavor's properties."""
    instance: instance.Description
    """The instance judged or drained."""


class HealthyResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    health: Health = Health.UNKNOWN
    """The verdict."""
    reason: str | None = omit_if_none()
    """(ext) What the probe said (``connection refused``, ``exec 'check.sh' exited 1: ...``);
    left out when it said nothing; v0.5 peers ignore it."""


class CanRemoveRequest(Wire):
    """(ext) Params of Flavor.CanRemove."""

    type: str = ""
    """The sub-object addressed."""
    properties: Any = None
    """The flavor's properties."""
    members: list[instance.Description] = Field(default_factory=list)
    """Every member of the group as the instance plugin describes it now."""
    instance: instance.Description
    """The member the group wants to destroy."""


class CanRemoveResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    allowed: bool = True
    """Whether the member may go now."""
    reason: str | None = omit_if_none()
    """Why not; left out when allowed."""


class OrderRequest(Wire):
    """(ext) Params of Flavor.Order."""

    type: str = ""
    """The sub-object addressed."""
    properties: Any = None
    """The flavor's properties."""
    instances: list[instance.Description] = Field(default_factory=list)
    """The members to order."""


class OrderResponse(Wire):
    type: str = ""
    """Echo of the request's type."""
    ids: list[instance.ID] = Field(default_factory=list)
    """The members' IDs in the order they should be replaced (the leader last)."""
